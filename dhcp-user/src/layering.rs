//! The gate against import circles between the modules of this crate (run with the unit tests).
//!
//! It reads the crate's sources from `src/`, following the `mod` declarations from `lib.rs`,
//! and takes every `crate::…` and `super::…` path of a module's code (comments and
//! `#[cfg(test)]` code left out: tests may reach across) as a dependency of that module on the
//! module the path names. The rooms are the top-level modules, and one level below for the
//! modules split into rooms of their own ([`SPLIT`]); a module and its own rooms (`server` and
//! `server::io`) are one house, so paths between them do not count. Any circle fails the test,
//! naming its modules in order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules whose submodules are rooms of their own.
const SPLIT: &[&str] = &["server", "leasequery", "fastpath", "control"];

/// One source file: its module path (`["server", "handler"]`) and its text.
struct Module {
    path: Vec<String>,
    text: String,
}

/// Every module of the crate reachable from `lib.rs` through `mod name;` declarations, test
/// modules (declared under `#[cfg(test)]`) left out.
fn modules(src: &Path) -> Vec<Module> {
    let mut out = Vec::new();
    let mut queue = vec![(Vec::<String>::new(), src.join("lib.rs"), src.to_path_buf())];
    while let Some((path, file, dir)) = queue.pop() {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let code = strip_test_code(&strip_comments(&text));
        for name in declared_modules(&code) {
            let (child_file, child_dir) = locate(&dir, &name);
            let mut child = path.clone();
            child.push(name);
            queue.push((child, child_file, child_dir));
        }
        out.push(Module { path, text: code });
    }
    out
}

/// The file of module `name` declared in a module whose children live in `dir`, and the
/// directory of its own children.
fn locate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let flat = dir.join(format!("{name}.rs"));
    if flat.exists() {
        (flat, dir.join(name))
    } else {
        (dir.join(name).join("mod.rs"), dir.join(name))
    }
}

/// Names of the `mod name;` declarations in `code`.
fn declared_modules(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in code.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "mod");
        let Some(at) = at else { continue };
        let visibility_only = words[..at]
            .iter()
            .all(|w| *w == "pub" || w.starts_with("pub("));
        if let Some(name) = words.get(at + 1).and_then(|w| w.strip_suffix(';')) {
            if visibility_only && is_ident(name) {
                names.push(name.to_string());
            }
        }
    }
    names
}

fn is_ident(word: &str) -> bool {
    !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `text` without `//` comments (doc comments included) and without string literals' contents,
/// so that neither counts as a path.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    in_string = false;
                    out.push('"');
                }
                '\n' => out.push('\n'),
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push('"');
            }
            '\'' => {
                // A char literal ('"', '\'') or a lifetime: copy a char literal whole.
                let rest: Vec<char> = chars.clone().take(12).collect();
                let len = if rest.first() == Some(&'\\') {
                    (2..rest.len()).find(|&i| rest[i] == '\'').map(|i| i + 1)
                } else if rest.get(1) == Some(&'\'') {
                    Some(2)
                } else {
                    None
                };
                out.push('\'');
                for _ in 0..len.unwrap_or(0) {
                    chars.next();
                }
                if len.is_some() {
                    out.push('\'');
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// `code` without the items marked `#[cfg(test)]` (inline test modules, `mod tests;`, helpers).
fn strip_test_code(code: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let item = &rest[at + MARK.len()..];
        // The item ends at its `;` (a declaration) or at the brace closing its body.
        let mut depth = 0usize;
        let mut end = item.len();
        for (i, c) in item.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// Every path in `code` that starts at `crate`, `super` or `self`, as (start, segments),
/// `use` groups (`crate::{a::b, c}`) expanded.
fn paths(code: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for start in ["crate", "super", "self"] {
        let pattern = format!("{start}::");
        let mut from = 0;
        while let Some(found) = code[from..].find(&pattern) {
            let at = from + found;
            from = at + pattern.len();
            let preceded = at > 0 && {
                let b = bytes[at - 1];
                b.is_ascii_alphanumeric() || b == b'_' || b == b':'
            };
            if preceded {
                continue;
            }
            for segments in expand(&code[at + pattern.len()..]) {
                out.push((start.to_string(), segments));
            }
        }
    }
    out
}

/// The paths `text` (what follows a `::`) spells: `a::b::c` or a group `{a::b, c::{d, e}}`.
fn expand(text: &str) -> Vec<Vec<String>> {
    let text = text.trim_start();
    if let Some(group) = text.strip_prefix('{') {
        let mut depth = 0usize;
        let mut items = Vec::new();
        let mut item_start = 0;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    items.push(&group[item_start..i]);
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&group[item_start..i]);
                    item_start = i + 1;
                }
                _ => {}
            }
        }
        return items
            .into_iter()
            .filter(|item| !item.trim().is_empty())
            .flat_map(expand)
            .collect();
    }
    let ident: String = text
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if ident.is_empty() {
        // `super::*`: the module itself.
        return vec![Vec::new()];
    }
    let after = &text[ident.len()..];
    match after.strip_prefix("::") {
        Some(more) => expand(more)
            .into_iter()
            .map(|mut tail| {
                tail.insert(0, ident.clone());
                tail
            })
            .collect(),
        None => vec![vec![ident]],
    }
}

/// The absolute module path a path from module `at` leads into.
fn resolve(at: &[String], start: &str, segments: &[String]) -> Vec<String> {
    let mut base: Vec<String> = match start {
        "crate" => Vec::new(),
        "super" => at[..at.len().saturating_sub(1)].to_vec(),
        _ => at.to_vec(),
    };
    let mut segments = segments.iter().peekable();
    while let Some(segment) = segments.next_if(|s| *s == "super" || *s == "self") {
        if segment == "super" {
            base.pop();
        }
    }
    base.extend(segments.cloned());
    base
}

/// The room of module path `path`, when it names a module of the crate.
fn room(path: &[String], known: &BTreeSet<Vec<String>>) -> Option<String> {
    let top = path.first()?;
    if !known.contains(&vec![top.clone()]) {
        return None;
    }
    match path.get(1) {
        Some(sub)
            if SPLIT.contains(&top.as_str()) && known.contains(&vec![top.clone(), sub.clone()]) =>
        {
            Some(format!("{top}::{sub}"))
        }
        _ => Some(top.clone()),
    }
}

/// Whether rooms `a` and `b` are one house (a module and its own rooms).
fn same_house(a: &str, b: &str) -> bool {
    a.split("::").next() == b.split("::").next()
}

/// Room → the rooms it imports, with one path for each (for the message).
fn dependencies(src: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let modules = modules(src);
    let known: BTreeSet<Vec<String>> = modules.iter().map(|m| m.path.clone()).collect();
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for module in &modules {
        let Some(from) = room(&module.path, &known) else {
            continue;
        };
        let entry = graph.entry(from.clone()).or_default();
        for (start, segments) in paths(&module.text) {
            let target = resolve(&module.path, &start, &segments);
            let Some(to) = room(&target, &known) else {
                continue;
            };
            if !same_house(&from, &to) {
                entry
                    .entry(to)
                    .or_insert_with(|| format!("{start}::{}", segments.join("::")));
            }
        }
    }
    graph
}

/// The first circle found in `graph`, as its rooms in order (the first repeated at the end).
fn find_cycle(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in graph.get(node).into_iter().flat_map(|edges| edges.keys()) {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(cycle);
        }
    }
    None
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn no_import_circle_between_modules() {
    let graph = dependencies(&src_dir());
    if let Some(cycle) = find_cycle(&graph) {
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|pair| {
                format!(
                    "{} -> {} (`{}`)",
                    pair[0], pair[1], graph[&pair[0]][&pair[1]]
                )
            })
            .collect();
        panic!(
            "import circle: {}\n  {}",
            cycle.join(" -> "),
            steps.join("\n  ")
        );
    }
}

#[test]
fn the_gate_sees_the_rooms_and_finds_a_planted_circle() {
    let graph = dependencies(&src_dir());
    // It reads the crate: the rooms below the split modules, and known dependencies.
    assert!(graph.contains_key("server::handler"), "{graph:?}");
    assert!(graph["server::handler"].contains_key("binding_rule"));
    assert!(graph["control::server"].contains_key("server"));
    assert!(
        !graph.contains_key("server::tests"),
        "test modules are left out"
    );
    // And a circle is named.
    let mut planted = graph.clone();
    planted
        .entry("store".into())
        .or_default()
        .insert("control::server".into(), "crate::control".into());
    let cycle = find_cycle(&planted).expect("the planted circle");
    assert!(cycle.contains(&"store".to_string()), "{cycle:?}");
}

#[test]
fn paths_are_read_through_groups_comments_and_strings() {
    let code = strip_comments(
        "use crate::{a::b, c::{d, e}}; // crate::f\nlet s = \"crate::g\"; super::h::i();\n",
    );
    let found: Vec<(String, Vec<String>)> = paths(&code);
    let names: Vec<String> = found
        .iter()
        .map(|(start, segments)| format!("{start}::{}", segments.join("::")))
        .collect();
    assert_eq!(
        names,
        ["crate::a::b", "crate::c::d", "crate::c::e", "super::h::i"]
    );
    assert_eq!(
        strip_test_code("a\n#[cfg(test)]\nmod tests {\n fn x() { crate::y(); }\n}\nb"),
        "a\n\nb"
    );
}
