//! Kea's client-class `test` expressions as the conditions of our `[[client-classes]]`, for
//! `convert-kea-config`: the shapes whose meaning ours has, and nothing else.
//!
//! A test converts when it is made of comparisons of these shapes joined by `and`, `or` and
//! parentheses (`C` a constant, `'text'` or `0x...`, never empty). Ours holds when all its
//! conditions do, so a test with `or` becomes one class of ours per branch (at most
//! [`MAX_BRANCHES`], `and` multiplied out), and what Kea keeps for the class is kept for all
//! of them:
//!
//! | Kea | ours |
//! | --- | --- |
//! | `vendor-class[E].exists` | `vendor-class = { enterprise = E }` |
//! | `vendor-class[E].data == C` (`E` may be `*`) | `vendor-class = { enterprise = E, data = C }` |
//! | `substring(vendor-class[E].data, 0, N) == C`, `C` of `N` bytes | `vendor-class = { enterprise = E, prefix = C }` |
//! | `substring(option[16].hex, 0, 4) == C` | `vendor-class = { enterprise = C }` |
//! | `option[16].hex == C`, `C` an enterprise number and one data item | `vendor-class = { enterprise, data }` |
//! | `option[15].hex == C`, `C` one user-class item | `user-class = { data }` |
//! | `relay6[-1].option[37].hex == C` | `relay-remote-id = { enterprise, id }` |
//! | `pkt.iface == C`; `substring(pkt.iface, 0, N) == C` | `interfaces = [C]`; `interfaces = ["C*"]` |
//! | `substring(option[1].hex, 0, N) == C`, `C` of `N` bytes | `duid-prefix = C` |
//!
//! Everything else is refused with the reason: `not`, `member`, other options and fields,
//! `.text` (Kea's text rendering of an option, not its bytes), relays counted from the server
//! (`relay6[0]`: ours reads the relay closest to the client), Interface-ID (ours matches any hop)
//! and comparisons that are always false or true.

use toml::Table;

/// Most classes of ours one Kea test may become: its `or` branches, once `and` is multiplied
/// out over them (`(A or B) and (C or D)` is four).
pub(super) const MAX_BRANCHES: usize = 8;

/// The conditions of our classes for Kea's `test`, as the keys of `[[client-classes]]` tables:
/// one per `or` branch (a client is in Kea's class when it is in any of them), or why the test
/// has no exact counterpart here.
pub(super) fn conditions(test: &str) -> Result<Vec<Table>, String> {
    let tokens = tokenize(test)?;
    let mut parser = Parser { tokens, at: 0 };
    let branches = parser.or()?;
    if let Some(token) = parser.tokens.get(parser.at) {
        return Err(format!("unexpected {token} after a complete test"));
    }
    let mut tables: Vec<Table> = Vec::with_capacity(branches.len());
    for branch in branches {
        let mut class = Conditions::default();
        for condition in branch {
            class.add(condition)?;
        }
        let table = class.table();
        // `A or A` is one class.
        if !tables.contains(&table) {
            tables.push(table);
        }
    }
    Ok(tables)
}

/// A test in disjunctive normal form: any branch holds when all its conditions do.
type Branches = Vec<Vec<Condition>>;

fn too_many_branches() -> String {
    format!(
        "`or` gives more than {MAX_BRANCHES} classes of ours once `and` is multiplied out; \
         write them by hand"
    )
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// `'text'` or `0x...`: bytes.
    Bytes(Vec<u8>),
    Int(i64),
    Word(String),
    Punct(&'static str),
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::Bytes(b) => write!(f, "constant 0x{}", hex::encode(b)),
            Token::Int(n) => write!(f, "`{n}`"),
            Token::Word(w) => write!(f, "`{w}`"),
            Token::Punct(p) => write!(f, "`{p}`"),
        }
    }
}

/// Kea's lexer, for the tokens of the shapes above; any other character is refused.
fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let rest = &text[i..];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'\'' {
            // Kea's strings have no escapes: up to the next quote.
            let end = rest[1..]
                .find('\'')
                .ok_or("a string without its closing quote")?;
            out.push(Token::Bytes(rest.as_bytes()[1..1 + end].to_vec()));
            i += end + 2;
        } else if rest.starts_with("0x") || rest.starts_with("0X") {
            let digits: String = rest[2..]
                .chars()
                .take_while(char::is_ascii_hexdigit)
                .collect();
            i += 2 + digits.len();
            // Kea pads an odd number of digits with a leading 0.
            let padded = if digits.len() % 2 == 1 {
                format!("0{digits}")
            } else {
                digits
            };
            let value = hex::decode(&padded).map_err(|err| format!("bad hex constant: {err}"))?;
            out.push(Token::Bytes(value));
        } else if c.is_ascii_digit()
            || (c == b'-' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            let len = 1 + rest[1..].chars().take_while(char::is_ascii_digit).count();
            let n = rest[..len]
                .parse()
                .map_err(|_| format!("`{}` is not an integer here", &rest[..len]))?;
            out.push(Token::Int(n));
            i += len;
        } else if c.is_ascii_alphabetic() {
            let len = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
                .count();
            out.push(Token::Word(rest[..len].to_string()));
            i += len;
        } else {
            let punct = ["==", "(", ")", "[", "]", ".", ",", "*"]
                .into_iter()
                .find(|p| rest.starts_with(p))
                .ok_or_else(|| {
                    format!(
                        "`{}` is not an operator converted here",
                        rest.chars().next().unwrap_or(' ')
                    )
                })?;
            out.push(Token::Punct(punct));
            i += punct.len();
        }
    }
    Ok(out)
}

/// A field of the message the test reads.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    /// `option[code].hex` (or `.text`) of the client's message.
    Option { code: u16, text: bool },
    /// `relay6[nest].option[code].hex` (or `.text`).
    Relay { nest: i64, code: u16, text: bool },
    /// `vendor-class[enterprise].data[index]` (`None`: `*` or 0, any vendor).
    VendorData { enterprise: Option<u32>, index: i64 },
    /// `pkt.iface`.
    Iface,
}

/// One operand of `==`, or a test by itself.
enum Operand {
    Bytes(Vec<u8>),
    Field(Field),
    /// `substring(field, start, length)`; `None`: `all`.
    Substring(Field, i64, Option<i64>),
    /// `vendor-class[enterprise].exists`.
    VendorExists(Option<u32>),
    /// `option[code].exists` or `relay6[nest].option[code].exists`.
    Exists,
}

/// A comparison made exact: the field equals or starts with the bytes.
struct Compare {
    field: Field,
    bytes: Vec<u8>,
    prefix: bool,
}

/// One condition of ours.
#[derive(Clone)]
enum Condition {
    Vendor {
        enterprise: Option<u32>,
        /// A data item equal to (or, `true`, starting with) the text.
        data: Option<(String, bool)>,
    },
    User(String),
    RemoteId(Vec<u8>),
    /// An interface name or pattern.
    Interface(String),
    DuidPrefix(Vec<u8>),
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Result<Token, String> {
        let token = self
            .tokens
            .get(self.at)
            .cloned()
            .ok_or("the test ends too early")?;
        self.at += 1;
        Ok(token)
    }

    fn expect(&mut self, punct: &'static str) -> Result<(), String> {
        match self.next()? {
            Token::Punct(p) if p == punct => Ok(()),
            other => Err(format!("`{punct}` expected, not {other}")),
        }
    }

    fn word(&mut self, want: &str) -> Result<(), String> {
        match self.next()? {
            Token::Word(w) if w == want => Ok(()),
            other => Err(format!("`{want}` expected, not {other}")),
        }
    }

    fn int(&mut self) -> Result<i64, String> {
        match self.next()? {
            Token::Int(n) => Ok(n),
            other => Err(format!("an integer expected, not {other}")),
        }
    }

    fn is_word(&self, want: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w == want)
    }

    /// `and`-terms joined by `or`: their branches, side by side.
    fn or(&mut self) -> Result<Branches, String> {
        let mut branches = self.and()?;
        while self.is_word("or") {
            self.at += 1;
            branches.extend(self.and()?);
            if branches.len() > MAX_BRANCHES {
                return Err(too_many_branches());
            }
        }
        Ok(branches)
    }

    /// Atoms joined by `and`: every branch of one with every branch of the next.
    fn and(&mut self) -> Result<Branches, String> {
        let mut branches = self.atom()?;
        while self.is_word("and") {
            self.at += 1;
            let right = self.atom()?;
            if branches.len() * right.len() > MAX_BRANCHES {
                return Err(too_many_branches());
            }
            branches = branches
                .iter()
                .flat_map(|left| {
                    right.iter().map(move |more| {
                        let mut both = left.clone();
                        both.extend(more.iter().cloned());
                        both
                    })
                })
                .collect();
        }
        Ok(branches)
    }

    fn atom(&mut self) -> Result<Branches, String> {
        if self.peek() == Some(&Token::Punct("(")) {
            self.at += 1;
            let inner = self.or()?;
            self.expect(")")?;
            return Ok(inner);
        }
        if self.is_word("not") {
            return Err("`not`: ours has no negation".into());
        }
        let left = self.operand()?;
        match left {
            Operand::VendorExists(enterprise) => {
                if enterprise.is_none() {
                    return Err(
                        "`vendor-class[*].exists`: ours matches a vendor class by its \
                                enterprise number or data, not its presence alone"
                            .into(),
                    );
                }
                return Ok(vec![vec![Condition::Vendor {
                    enterprise,
                    data: None,
                }]]);
            }
            Operand::Exists => {
                return Err(
                    "`.exists` of an option: ours matches an option's content, not \
                            its presence alone"
                        .into(),
                )
            }
            _ => {}
        }
        self.expect("==")?;
        let right = self.operand()?;
        let compare = exact(left, right)?;
        Ok(vec![vec![condition(compare)?]])
    }

    fn operand(&mut self) -> Result<Operand, String> {
        match self.next()? {
            Token::Bytes(bytes) => Ok(Operand::Bytes(bytes)),
            Token::Word(w) => match w.as_str() {
                "option" => {
                    let code = self.code()?;
                    self.expect(".")?;
                    self.representation(|text| Operand::Field(Field::Option { code, text }))
                }
                "relay6" => {
                    self.expect("[")?;
                    let nest = self.int()?;
                    self.expect("]")?;
                    self.expect(".")?;
                    self.word("option")?;
                    let code = self.code()?;
                    self.expect(".")?;
                    self.representation(|text| Operand::Field(Field::Relay { nest, code, text }))
                }
                "vendor-class" => {
                    self.expect("[")?;
                    let enterprise = match self.next()? {
                        Token::Punct("*") | Token::Int(0) => None,
                        Token::Int(n) => Some(
                            u32::try_from(n)
                                .map_err(|_| format!("enterprise number {n} out of range"))?,
                        ),
                        other => return Err(format!("an enterprise number expected, not {other}")),
                    };
                    self.expect("]")?;
                    self.expect(".")?;
                    match self.next()? {
                        Token::Word(w) if w == "exists" => Ok(Operand::VendorExists(enterprise)),
                        Token::Word(w) if w == "data" => {
                            let mut index = 0;
                            if self.peek() == Some(&Token::Punct("[")) {
                                self.at += 1;
                                index = self.int()?;
                                self.expect("]")?;
                            }
                            Ok(Operand::Field(Field::VendorData { enterprise, index }))
                        }
                        other => Err(format!(
                            "vendor-class {other}: only `.exists` and `.data` convert"
                        )),
                    }
                }
                "pkt" => {
                    self.expect(".")?;
                    self.word("iface")
                        .map_err(|_| "of `pkt`, only `pkt.iface` converts".to_string())?;
                    Ok(Operand::Field(Field::Iface))
                }
                "substring" => {
                    self.expect("(")?;
                    let Operand::Field(field) = self.operand()? else {
                        return Err("`substring` of something else than a field".into());
                    };
                    self.expect(",")?;
                    let start = self.int()?;
                    self.expect(",")?;
                    let length = if self.is_word("all") {
                        self.at += 1;
                        None
                    } else {
                        Some(self.int()?)
                    };
                    self.expect(")")?;
                    Ok(Operand::Substring(field, start, length))
                }
                "member" | "known" | "unknown" => Err(format!(
                    "`{w}`: ours has no class of classes (or of reservations)"
                )),
                other => Err(format!("`{other}` is not a shape converted here")),
            },
            Token::Int(n) => Err(format!(
                "the integer `{n}`: compare bytes, `'text'` or `0x...`"
            )),
            other => Err(format!("{other} where a field or a constant was expected")),
        }
    }

    /// `[code]` of an option.
    fn code(&mut self) -> Result<u16, String> {
        self.expect("[")?;
        let code = match self.next()? {
            Token::Int(n) => u16::try_from(n)
                .ok()
                .filter(|c| *c > 0)
                .ok_or_else(|| format!("option code {n} out of range"))?,
            Token::Word(name) => {
                return Err(format!(
                    "option `{name}` by name: give its code (`option[16]`)"
                ))
            }
            other => return Err(format!("an option code expected, not {other}")),
        };
        self.expect("]")?;
        Ok(code)
    }

    /// `.hex`, `.text` or `.exists` after an option.
    fn representation(&mut self, field: impl Fn(bool) -> Operand) -> Result<Operand, String> {
        match self.next()? {
            Token::Word(w) if w == "hex" => Ok(field(false)),
            Token::Word(w) if w == "text" => Ok(field(true)),
            Token::Word(w) if w == "exists" => Ok(Operand::Exists),
            other => Err(format!("{other}: `.hex` expected")),
        }
    }
}

/// `left == right` as an exact equal-or-prefix comparison of a field with bytes.
fn exact(left: Operand, right: Operand) -> Result<Compare, String> {
    let (operand, bytes) = match (left, right) {
        (Operand::Bytes(b), other) | (other, Operand::Bytes(b)) => (other, b),
        _ => return Err("`==` of two fields: ours compares a field with a constant".into()),
    };
    if bytes.is_empty() {
        // Kea reads a missing option as the empty string: `== ''` also holds without it.
        return Err("a comparison with the empty string (true also without the option)".into());
    }
    match operand {
        Operand::Field(field) => Ok(Compare {
            field,
            bytes,
            prefix: false,
        }),
        Operand::Substring(field, 0, None) => Ok(Compare {
            field,
            bytes,
            prefix: false,
        }),
        Operand::Substring(field, 0, Some(len)) => {
            let len = usize::try_from(len).unwrap_or(0);
            // Kea's substring is shorter when the field is: a constant shorter than the
            // length compares the whole field, one longer never matches.
            match bytes.len().cmp(&len) {
                std::cmp::Ordering::Equal => Ok(Compare {
                    field,
                    bytes,
                    prefix: true,
                }),
                std::cmp::Ordering::Less => Ok(Compare {
                    field,
                    bytes,
                    prefix: false,
                }),
                std::cmp::Ordering::Greater => {
                    Err("a constant longer than its substring: never true".into())
                }
            }
        }
        Operand::Substring(_, start, _) => Err(format!(
            "`substring` from byte {start}: only substrings from 0 (a prefix) convert"
        )),
        _ => Err("`==` of two constants".into()),
    }
}

/// The opaque-data items of a User Class or Vendor Class body (RFC 8415 sections 21.15,
/// 21.16): `None` unless the bytes are whole items.
fn whole_items(mut body: &[u8]) -> Option<Vec<&[u8]>> {
    let mut items = Vec::new();
    while !body.is_empty() {
        let len = usize::from(u16::from_be_bytes(body.get(..2)?.try_into().ok()?));
        items.push(body.get(2..2 + len)?);
        body = &body[2 + len..];
    }
    Some(items)
}

/// The one item of `body`, if it is exactly one.
fn one_item(body: &[u8]) -> Option<&[u8]> {
    match whole_items(body)?.as_slice() {
        [item] => Some(*item),
        _ => None,
    }
}

fn condition(compare: Compare) -> Result<Condition, String> {
    let Compare {
        field,
        bytes,
        prefix,
    } = compare;
    let kind = if prefix { "starts with" } else { "equals" };
    match field {
        Field::Option { text: true, .. } | Field::Relay { text: true, .. } => Err(
            "`.text` is Kea's text rendering of an option, not its bytes: compare `.hex`".into(),
        ),
        Field::Iface => {
            let name = String::from_utf8(bytes).map_err(|_| "an interface name is text")?;
            if crate::config::is_interface_pattern(&name) {
                return Err(format!(
                    "interface `{name}`: `*` and `?` are patterns in our interfaces"
                ));
            }
            Ok(Condition::Interface(if prefix {
                format!("{name}*")
            } else {
                name
            }))
        }
        Field::VendorData { index, .. } if index != 0 => Err(format!(
            "`vendor-class[...].data[{index}]`: ours matches any data item, Kea's test one \
             item by its place: only the first (index 0) converts"
        )),
        Field::VendorData { enterprise, .. } => Ok(Condition::Vendor {
            enterprise,
            data: Some((utf8(&bytes)?, prefix)),
        }),
        Field::Option { code: 1, .. } if prefix => Ok(Condition::DuidPrefix(bytes)),
        Field::Option { code: 1, .. } => Err(
            "the whole Client Identifier: ours matches a DUID's first bytes, \
             `substring(option[1].hex, 0, N)`"
                .into(),
        ),
        Field::Option { code: 15, .. } => match one_item(&bytes) {
            // A prefix of the body that is one whole item: the first item is that one.
            Some(item) => Ok(Condition::User(utf8(item)?)),
            None => Err(format!(
                "option 15 {kind} 0x{}: ours matches one whole user-class item (a 2-byte length, \
                 then the data)",
                hex::encode(&bytes)
            )),
        },
        Field::Option { code: 16, .. } => {
            let (enterprise, items) = bytes
                .split_first_chunk::<4>()
                .map(|(e, rest)| (u32::from_be_bytes(*e), rest))
                .ok_or("option 16 starts with a 4-byte enterprise number")?;
            if items.is_empty() && prefix {
                return Ok(Condition::Vendor {
                    enterprise: Some(enterprise),
                    data: None,
                });
            }
            match one_item(items) {
                Some(item) => Ok(Condition::Vendor {
                    enterprise: Some(enterprise),
                    data: Some((utf8(item)?, false)),
                }),
                None => Err(format!(
                    "option 16 {kind} 0x{}: ours matches an enterprise number (the first 4 \
                     bytes) and one whole data item",
                    hex::encode(&bytes)
                )),
            }
        }
        Field::Option { code, .. } => Err(format!(
            "option {code}: our classes match on options 1 (DUID prefix), 15 and 16"
        )),
        Field::Relay { nest, code: 37, .. } if nest != -1 => Err(format!(
            "`relay6[{nest}]` counts relays from the server; ours reads the Remote-ID of the \
             relay closest to the client, Kea's `relay6[-1]` (the same behind one relay: write \
             that and convert again)"
        )),
        Field::Relay { code: 37, .. } if prefix => {
            Err("a Remote-ID's first bytes: ours matches the whole Remote-ID".into())
        }
        Field::Relay { code: 37, .. } if bytes.len() < 5 => {
            Err("a Remote-ID is a 4-byte enterprise number and an id of at least one byte".into())
        }
        Field::Relay { code: 37, .. } => Ok(Condition::RemoteId(bytes)),
        Field::Relay { code: 18, .. } => Err(
            "a relay's Interface-ID: ours matches one at any relay hop, Kea's test at one hop"
                .into(),
        ),
        Field::Relay { code, .. } => Err(format!(
            "relay option {code}: our classes match relays' Remote-ID (37) only"
        )),
    }
}

/// Our class data are text (their UTF-8 bytes): other bytes have no counterpart.
fn utf8(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        format!(
            "the data 0x{}: ours matches class data given as text, and these bytes are not UTF-8",
            hex::encode(bytes)
        )
    })
}

/// Our class's conditions, all of which must hold.
#[derive(Default)]
struct Conditions {
    enterprise: Option<u32>,
    vendor_data: Option<(String, bool)>,
    vendor: bool,
    user: Option<String>,
    remote_id: Option<Vec<u8>>,
    interface: Option<String>,
    duid_prefix: Option<Vec<u8>>,
}

/// Sets `slot` to `value`: the same twice is fine, two values are one condition too many.
fn once<T: PartialEq>(slot: &mut Option<T>, value: T, what: &str) -> Result<(), String> {
    match slot {
        Some(old) if *old != value => Err(format!(
            "two {what} conditions joined by `and`: ours holds one"
        )),
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

impl Conditions {
    fn add(&mut self, condition: Condition) -> Result<(), String> {
        match condition {
            // Kea reads the first Vendor Class option: both conditions are on it, as ours
            // are on one option.
            Condition::Vendor { enterprise, data } => {
                self.vendor = true;
                if let Some(e) = enterprise {
                    once(&mut self.enterprise, e, "enterprise number")?;
                }
                if let Some(d) = data {
                    once(&mut self.vendor_data, d, "vendor-class data")?;
                }
                Ok(())
            }
            Condition::User(item) => once(&mut self.user, item, "user-class"),
            Condition::RemoteId(id) => once(&mut self.remote_id, id, "Remote-ID"),
            Condition::Interface(name) => once(&mut self.interface, name, "interface"),
            Condition::DuidPrefix(bytes) => once(&mut self.duid_prefix, bytes, "DUID"),
        }
    }

    fn table(self) -> Table {
        let mut table = Table::new();
        if self.vendor {
            let mut vendor = Table::new();
            if let Some(e) = self.enterprise {
                vendor.insert("enterprise".into(), i64::from(e).into());
            }
            if let Some((data, prefix)) = &self.vendor_data {
                let key = if *prefix { "prefix" } else { "data" };
                vendor.insert(key.into(), data.clone().into());
            }
            table.insert("vendor-class".into(), toml::Value::Table(vendor));
        }
        if let Some(item) = &self.user {
            let mut user = Table::new();
            user.insert("data".into(), item.clone().into());
            table.insert("user-class".into(), toml::Value::Table(user));
        }
        if let Some(id) = &self.remote_id {
            let mut remote = Table::new();
            let (enterprise, rest) = id.split_at(4);
            let enterprise = u32::from_be_bytes(enterprise.try_into().unwrap_or_default());
            remote.insert("enterprise".into(), i64::from(enterprise).into());
            remote.insert("id".into(), hex::encode(rest).into());
            table.insert("relay-remote-id".into(), toml::Value::Table(remote));
        }
        if let Some(name) = self.interface {
            table.insert("interfaces".into(), toml::Value::Array(vec![name.into()]));
        }
        if let Some(bytes) = &self.duid_prefix {
            table.insert("duid-prefix".into(), hex::encode(bytes).into());
        }
        table
    }
}
