//! Deterministic sampling: items ordered by a seeded hash of their id, so a cap takes a
//! representative, reproducible subset (the first rows of a shard are often one corpus, or one
//! label) that does not change when other items are added or removed.

/// The sort key of `id` under `seed`.
fn key(seed: u64, id: &str) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&seed.to_le_bytes());
    hasher.update(id.as_bytes());
    *hasher.finalize().as_bytes()
}

/// Sorts `items` by `blake3(seed, id)` (ties, which need equal ids, by position).
pub fn hash_order<T>(items: &mut [T], seed: u64, id: impl Fn(&T) -> &str) {
    items.sort_by_cached_key(|item| key(seed, id(item)));
}

/// How many leading items to take so that their tokens reach `max_tokens`: items are taken
/// whole, so the last one may overshoot the cap; `None` takes every item.
pub fn take_until_tokens<T>(
    items: &[T],
    max_tokens: Option<u64>,
    tokens: impl Fn(&T) -> u64,
) -> usize {
    let Some(cap) = max_tokens else {
        return items.len();
    };
    let mut total = 0;
    for (i, item) in items.iter().enumerate() {
        if total >= cap {
            return i;
        }
        total += tokens(item);
    }
    items.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_a_function_of_seed_and_ids() {
        let mut a = vec!["x/1", "x/2", "y/1", "y/2", "z/9"];
        let mut b = vec!["z/9", "y/2", "x/1", "y/1", "x/2"];
        hash_order(&mut a, 7, |s| s);
        hash_order(&mut b, 7, |s| s);
        assert_eq!(a, b);
        let mut c = a.clone();
        hash_order(&mut c, 8, |s| s);
        assert_ne!(a, c, "another seed, another order (overwhelmingly likely)");
    }

    #[test]
    fn cap_takes_whole_items_until_reached() {
        let lens = [5u64, 5, 5, 5];
        assert_eq!(take_until_tokens(&lens, Some(10), |&l| l), 2);
        assert_eq!(take_until_tokens(&lens, Some(11), |&l| l), 3);
        assert_eq!(take_until_tokens(&lens, Some(0), |&l| l), 0);
        assert_eq!(take_until_tokens(&lens, Some(100), |&l| l), 4);
        assert_eq!(take_until_tokens(&lens, None, |&l| l), 4);
    }
}
