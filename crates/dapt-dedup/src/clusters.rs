//! Clusters of duplicates and the one document each cluster keeps.
//!
//! Exact duplicates (equal [`exact_key`](crate::text::exact_key)) are merged first;
//! one document per exact group then enters LSH, where documents sharing a band key
//! are merged with union-find. Every cluster keeps one representative chosen by a
//! fixed rule — protected (evaluation) documents first, then the smallest id — so
//! the result depends only on the set of documents, never on their order, threads,
//! or on which run (fresh or resumed) computed the signatures.

use std::collections::HashMap;

use crate::minhash::{MinHasher, Signature, estimated_similarity};

/// What [`resolve`] needs of one document.
pub struct Member<'a> {
    pub id: &'a str,
    pub exact: u128,
    pub signature: &'a Signature,
    /// Evaluation documents win their cluster, so training copies are the ones removed.
    pub protected: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Keep {
        cluster_size: usize,
    },
    Duplicate {
        /// Index of the representative that is kept.
        of: usize,
        /// The cluster id: the representative's index.
        cluster: usize,
        /// Exact (normalised-text) duplicate of the representative, or near.
        exact: bool,
    },
}

pub(crate) struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    pub(crate) fn new(n: usize) -> Self {
        UnionFind {
            parent: (0..n as u32).collect(),
        }
    }

    pub(crate) fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand; // path halving
            x = grand;
        }
        x
    }

    pub(crate) fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi as usize] = lo;
        }
    }
}

/// Decides, for each member, whether it is kept or a duplicate of which member.
///
/// With `verify = Some(t)`, two LSH candidates are merged only if their signatures
/// estimate a Jaccard similarity of at least `t` (fewer false positives from band
/// collisions); with `None`, every candidate pair is merged, as datatrove does.
/// `progress` receives 1 after each LSH band is bucketed (`hasher.config().bands` in all).
pub fn resolve(
    members: &[Member<'_>],
    hasher: &MinHasher,
    verify: Option<f64>,
    progress: &mut dyn FnMut(u64),
) -> Vec<Decision> {
    decisions(members, &resolve_roots(members, hasher, verify, progress))
}

/// [`resolve`]'s clusters: each member's root, the smallest index in its cluster.
pub fn resolve_roots(
    members: &[Member<'_>],
    hasher: &MinHasher,
    verify: Option<f64>,
    progress: &mut dyn FnMut(u64),
) -> Vec<u32> {
    let n = members.len();
    let mut uf = UnionFind::new(n);

    let mut exact_groups: HashMap<u128, u32> = HashMap::with_capacity(n);
    let mut lsh_entrants = Vec::with_capacity(n);
    for (i, m) in members.iter().enumerate() {
        match exact_groups.get(&m.exact) {
            Some(&first) => uf.union(first, i as u32),
            None => {
                exact_groups.insert(m.exact, i as u32);
                lsh_entrants.push(i as u32);
            }
        }
    }

    // Band-major: one column of keys per band, a row per LSH entrant.
    let mut columns = vec![Vec::with_capacity(lsh_entrants.len()); hasher.config().bands];
    for &i in &lsh_entrants {
        for (column, key) in columns
            .iter_mut()
            .zip(hasher.band_keys(members[i as usize].signature))
        {
            column.push(key);
        }
    }
    for column in &columns {
        let mut buckets: HashMap<u64, Vec<u32>> = HashMap::with_capacity(lsh_entrants.len());
        for (&key, &i) in column.iter().zip(&lsh_entrants) {
            let bucket = buckets.entry(key).or_default();
            let partner = match verify {
                None => bucket.first().copied(),
                Some(t) => bucket.iter().copied().find(|&j| {
                    estimated_similarity(
                        members[i as usize].signature,
                        members[j as usize].signature,
                    ) >= t
                }),
            };
            if let Some(j) = partner {
                uf.union(j, i);
            }
            if verify.is_some() || bucket.is_empty() {
                bucket.push(i);
            }
        }
        progress(1);
    }

    (0..n as u32).map(|i| uf.find(i)).collect()
}

/// Each member's decision from its cluster root (`roots[i]`: any id shared by exactly the
/// members of `i`'s cluster): the representative is chosen by the fixed rule.
pub fn decisions(members: &[Member<'_>], roots: &[u32]) -> Vec<Decision> {
    let n = members.len();
    let mut representative: HashMap<u32, usize> = HashMap::new();
    let mut sizes: HashMap<u32, usize> = HashMap::new();
    for i in 0..n {
        let root = roots[i];
        *sizes.entry(root).or_default() += 1;
        let better = |cur: usize| {
            let (a, b) = (&members[i], &members[cur]);
            (!a.protected, a.id) < (!b.protected, b.id)
        };
        match representative.get(&root) {
            Some(&cur) if !better(cur) => {}
            _ => {
                representative.insert(root, i);
            }
        }
    }
    (0..n)
        .map(|i| {
            let root = roots[i];
            let rep = representative[&root];
            if rep == i {
                Decision::Keep {
                    cluster_size: sizes[&root],
                }
            } else {
                Decision::Duplicate {
                    of: rep,
                    cluster: rep,
                    exact: members[i].exact == members[rep].exact,
                }
            }
        })
        .collect()
}

/// A cluster of two or more documents, and the one it keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub size: u32,
    pub representative: u32,
    pub representative_id: String,
    pub representative_protected: bool,
    pub representative_exact: u128,
}

/// [`decisions`] without every member in memory: the roots (4 bytes a document) and one
/// entry per cluster of two or more, filled from one pass over the members.
#[derive(Debug)]
pub struct Clusters {
    roots: Vec<u32>,
    multi: HashMap<u32, Cluster>,
}

impl Clusters {
    /// `visit` must call its argument with every member in index order: `(index, id,
    /// protected, exact)`.
    pub fn new<E>(
        roots: Vec<u32>,
        visit: impl FnOnce(&mut dyn FnMut(u32, &str, bool, u128)) -> Result<(), E>,
    ) -> Result<Self, E> {
        let mut multi: HashMap<u32, Cluster> = HashMap::new();
        for (i, &root) in roots.iter().enumerate() {
            if root as usize != i {
                multi
                    .entry(root)
                    .or_insert_with(|| Cluster {
                        size: 1,
                        representative: u32::MAX,
                        representative_id: String::new(),
                        representative_protected: false,
                        representative_exact: 0,
                    })
                    .size += 1;
            }
        }
        visit(&mut |i, id, protected, exact| {
            let Some(c) = multi.get_mut(&roots[i as usize]) else {
                return;
            };
            // The fixed rule of `decisions`: protected first, then the smallest id.
            if c.representative == u32::MAX
                || (!protected, id) < (!c.representative_protected, c.representative_id.as_str())
            {
                c.representative = i;
                c.representative_id = id.to_string();
                c.representative_protected = protected;
                c.representative_exact = exact;
            }
        })?;
        Ok(Clusters { roots, multi })
    }

    pub fn len(&self) -> usize {
        self.roots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// Member `i`'s cluster, if it has two or more members.
    pub fn cluster_of(&self, i: usize) -> Option<&Cluster> {
        self.multi.get(&self.roots[i])
    }

    /// Member `i`'s decision; `exact` is its exact key.
    pub fn decision(&self, i: usize, exact: u128) -> Decision {
        match self.cluster_of(i) {
            None => Decision::Keep { cluster_size: 1 },
            Some(c) if c.representative as usize == i => Decision::Keep {
                cluster_size: c.size as usize,
            },
            Some(c) => Decision::Duplicate {
                of: c.representative as usize,
                cluster: c.representative as usize,
                exact: exact == c.representative_exact,
            },
        }
    }

    /// How many clusters of each size (singletons included).
    pub fn sizes(&self) -> impl Iterator<Item = usize> + '_ {
        let clustered: usize = self.multi.values().map(|c| c.size as usize).sum();
        std::iter::repeat_n(1, self.roots.len() - clustered)
            .chain(self.multi.values().map(|c| c.size as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::minhash::MinHashConfig;
    use crate::text::exact_key;

    fn doc(salt: usize) -> String {
        (0..300)
            .map(|i| format!("t{}", crate::text::mix((salt as u64) << 32 | i) % 50_000))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn decide(texts: &[String], ids: &[&str], protected: &[bool]) -> Vec<Decision> {
        let h = MinHasher::new(MinHashConfig::default());
        let sigs: Vec<Signature> = texts.iter().map(|t| h.signature(t)).collect();
        let members: Vec<Member> = (0..texts.len())
            .map(|i| Member {
                id: ids[i],
                exact: exact_key(&texts[i]),
                signature: &sigs[i],
                protected: protected[i],
            })
            .collect();
        resolve(&members, &h, Some(0.5), &mut |_| {})
    }

    #[test]
    fn exact_and_near_copies_join_one_cluster_with_a_fixed_representative() {
        let a = doc(1);
        let near = a.replacen("t", "x", 3); // three words edited
        let texts = vec![doc(2), a.to_uppercase(), near, a.clone(), doc(3)];
        let ids = ["e", "d", "c", "b", "a"];
        let got = decide(&texts, &ids, &[false; 5]);
        // The cluster {d, c, b} keeps the smallest id, "b" (index 3).
        assert_eq!(got[0], Decision::Keep { cluster_size: 1 });
        assert_eq!(
            got[1],
            Decision::Duplicate {
                of: 3,
                cluster: 3,
                exact: true
            }
        );
        assert_eq!(
            got[2],
            Decision::Duplicate {
                of: 3,
                cluster: 3,
                exact: false
            }
        );
        assert_eq!(got[3], Decision::Keep { cluster_size: 3 });
        assert_eq!(got[4], Decision::Keep { cluster_size: 1 });

        // Order does not matter: reversed input, same survivors.
        let mut rev_texts = texts.clone();
        rev_texts.reverse();
        let mut rev_ids = ids;
        rev_ids.reverse();
        let rev = decide(&rev_texts, &rev_ids, &[false; 5]);
        let kept = |d: &[Decision], ids: &[&str]| {
            let mut k: Vec<String> = ids
                .iter()
                .zip(d)
                .filter(|(_, d)| matches!(d, Decision::Keep { .. }))
                .map(|(i, _)| i.to_string())
                .collect();
            k.sort();
            k
        };
        assert_eq!(kept(&got, &ids), kept(&rev, &rev_ids));
    }

    #[test]
    fn protected_documents_win_their_cluster() {
        let a = doc(7);
        let got = decide(
            &[a.clone(), a.clone()],
            &["a-train", "z-test"],
            &[false, true],
        );
        assert_eq!(
            got[0],
            Decision::Duplicate {
                of: 1,
                cluster: 1,
                exact: true
            }
        );
    }
}
