//! The change history leasequery catches up from.

use super::*;

/// Every commit is in the history, in order; sequence numbers are never reused; times never go back. (on every backend: see `on_every_backend`)
pub(super) fn change_history_records_every_commit(store: &dyn LeaseStore) {
    assert_eq!(store.oldest_change_time().unwrap(), None);
    assert_eq!(store.last_seq().unwrap(), 0);
    let first = store.commit(&upserts([na(1), na(2)]), NOW).unwrap();
    assert_eq!(
        first,
        CommitReceipt {
            at: NOW,
            last_seq: 2
        }
    );
    let mut renewed = na(1);
    renewed.assign(NOW + 100, 1800, 3600);
    let second = store
        .commit(&upserts([renewed.clone()]), NOW + 100)
        .unwrap();
    assert_eq!(second.last_seq, 3);
    // Deleting an absent lease changes nothing and records nothing.
    let third = store
        .commit(
            &[
                LeaseChange::Delete(na(2).key()),
                LeaseChange::Delete(na(77).key()),
            ],
            NOW + 200,
        )
        .unwrap();
    assert_eq!(third.last_seq, 4);
    assert_eq!(store.get(&na(2).key()).unwrap(), None);

    let all = store.changes_since(ChangeCursor::AfterSeq(0), 100).unwrap();
    let summary: Vec<_> = all
        .iter()
        .map(|c| (c.seq, c.at, c.kind, c.lease.iaid))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, NOW, ChangeKind::Upsert, 1),
            (2, NOW, ChangeKind::Upsert, 2),
            (3, NOW + 100, ChangeKind::Upsert, 1),
            (4, NOW + 200, ChangeKind::Delete, 2),
        ]
    );
    assert_eq!(all[2].lease, renewed);
    assert_eq!(all[3].lease, na(2), "a delete keeps the lease as it was");
    assert_eq!(
        store.changes_since(ChangeCursor::AfterSeq(2), 1).unwrap(),
        vec![all[2].clone()]
    );
    assert_eq!(
        store
            .changes_since(ChangeCursor::SinceTime(NOW + 100), 100)
            .unwrap(),
        all[2..].to_vec()
    );
    assert_eq!(
        store
            .changes_since(ChangeCursor::SinceTime(NOW + 201), 100)
            .unwrap(),
        vec![]
    );
    assert_eq!(store.oldest_change_time().unwrap(), Some(NOW));

    assert_eq!(store.prune_changes(NOW + 100).unwrap(), 2);
    assert_eq!(store.oldest_change_time().unwrap(), Some(NOW + 100));
    assert_eq!(store.prune_changes(NOW + 1000).unwrap(), 2);
    assert_eq!(store.oldest_change_time().unwrap(), None);
    // Sequence numbers are never reused, also after the history was pruned empty.
    assert_eq!(store.last_seq().unwrap(), 4);
    assert_eq!(
        store.commit(&upserts([na(5)]), NOW + 300).unwrap().last_seq,
        5
    );
    assert_eq!(
        store.changes_since(ChangeCursor::AfterSeq(0), 10).unwrap()[0].seq,
        5
    );
    // A clock that stepped back does not make history time go backwards.
    let stepped_back = store.commit(&upserts([na(6)]), NOW + 250).unwrap();
    assert_eq!(
        stepped_back,
        CommitReceipt {
            at: NOW + 300,
            last_seq: 6
        }
    );
    let since = store
        .changes_since(ChangeCursor::SinceTime(NOW + 300), 10)
        .unwrap();
    assert_eq!(since.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![5, 6]);
}
