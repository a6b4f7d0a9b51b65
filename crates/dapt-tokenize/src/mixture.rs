//! Mixing several domains' loaders by token weight (e.g. financial 0.5, general 0.5).
//!
//! Every sequence has the same length, so token shares are sequence shares. Each draw goes to
//! the domain furthest below its target (`weight * draws_so_far - drawn`, ties to the first
//! domain): deterministic, and after `n` draws every domain is within one sequence of its
//! target, so the realised mixture converges at rate 1/n instead of the 1/sqrt(n) of random
//! sampling. A domain that runs out of sequences starts a new (reshuffled) epoch — small
//! domains repeat.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};

use crate::batch_source::TokenBatchSource;
use crate::loader::SequenceLoader;

struct Component {
    loader: SequenceLoader,
    weight: f64,
    sequences_drawn: u64,
}

pub struct MixtureSampler {
    components: Vec<Component>,
    seq_len: usize,
}

/// Realised mixture of one domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainDraws {
    /// Target share (normalised weight).
    pub weight: f64,
    pub sequences: u64,
    /// Training tokens (targets): `seq_len` per sequence.
    pub tokens: u64,
    pub realised_share: f64,
    /// Passes over the domain's sequences so far (1.5 = every sequence once, half twice).
    pub epochs: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MixtureState {
    seq_len: usize,
    weights: BTreeMap<String, f64>,
    sequences_drawn: BTreeMap<String, u64>,
    loaders: BTreeMap<String, serde_json::Value>,
}

impl MixtureSampler {
    /// `domains`: each domain's loader and weight (normalised here, so 1:1 or 0.5/0.5 alike).
    pub fn new(domains: Vec<(SequenceLoader, f64)>) -> Result<Self> {
        let Some(seq_len) = domains.first().map(|(loader, _)| loader.seq_len()) else {
            bail!("a mixture needs at least one domain");
        };
        let total: f64 = domains.iter().map(|(_, weight)| weight).sum();
        let mut names = BTreeSet::new();
        for (loader, weight) in &domains {
            let domain = loader.packed().domain();
            ensure!(
                weight.is_finite() && *weight > 0.0,
                "mixture weight of `{domain}` is {weight}; weights must be positive (leave a \
                 domain out instead of giving it 0)"
            );
            ensure!(
                loader.seq_len() == seq_len,
                "all loaders of a mixture need the same seq_len: `{domain}` has {}, expected {seq_len}",
                loader.seq_len()
            );
            ensure!(
                names.insert(domain.to_owned()),
                "domain `{domain}` appears twice in the mixture"
            );
        }
        let components = domains
            .into_iter()
            .map(|(loader, weight)| Component {
                loader,
                weight: weight / total,
                sequences_drawn: 0,
            })
            .collect();
        Ok(Self {
            components,
            seq_len,
        })
    }

    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// The domain furthest below its target share after one more draw.
    fn pick(&self) -> usize {
        let drawn_after: u64 = self
            .components
            .iter()
            .map(|c| c.sequences_drawn)
            .sum::<u64>()
            + 1;
        let deficit = |c: &Component| c.weight * drawn_after as f64 - c.sequences_drawn as f64;
        let mut best = 0;
        for (index, component) in self.components.iter().enumerate().skip(1) {
            if deficit(component) > deficit(&self.components[best]) {
                best = index;
            }
        }
        best
    }

    /// Appends the next sequence to `ids` and returns the domain it came from.
    pub fn next_sequence_into(&mut self, ids: &mut Vec<u32>) -> &str {
        let index = self.pick();
        let component = &mut self.components[index];
        component.sequences_drawn += 1;
        ids.extend_from_slice(component.loader.next_sequence());
        component.loader.packed().domain()
    }

    /// Realised mixture so far, per domain.
    pub fn report(&self) -> BTreeMap<String, DomainDraws> {
        let total: u64 = self.components.iter().map(|c| c.sequences_drawn).sum();
        self.components
            .iter()
            .map(|c| {
                let draws = DomainDraws {
                    weight: c.weight,
                    sequences: c.sequences_drawn,
                    tokens: c.sequences_drawn * self.seq_len as u64,
                    realised_share: c.sequences_drawn as f64 / total.max(1) as f64,
                    epochs: c.sequences_drawn as f64 / c.loader.num_sequences() as f64,
                };
                (c.loader.packed().domain().to_owned(), draws)
            })
            .collect()
    }

    fn domain_map<T>(&self, value: impl Fn(&Component) -> T) -> BTreeMap<String, T> {
        self.components
            .iter()
            .map(|c| (c.loader.packed().domain().to_owned(), value(c)))
            .collect()
    }
}

impl TokenBatchSource for MixtureSampler {
    fn next_batch(&mut self, batch: usize, seq_len: usize) -> Result<Vec<u32>> {
        ensure!(
            seq_len == self.seq_len,
            "asked for seq_len {seq_len} but the mixture's loaders pack sequences of {}; build \
             them with the training seq_len",
            self.seq_len
        );
        let mut ids = Vec::with_capacity(batch * (seq_len + 1));
        for _ in 0..batch {
            self.next_sequence_into(&mut ids);
        }
        Ok(ids)
    }

    fn state(&self) -> serde_json::Value {
        let state = MixtureState {
            seq_len: self.seq_len,
            weights: self.domain_map(|c| c.weight),
            sequences_drawn: self.domain_map(|c| c.sequences_drawn),
            loaders: self.domain_map(|c| c.loader.state()),
        };
        serde_json::to_value(state).expect("mixture state serialises")
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<()> {
        let saved: MixtureState = serde_json::from_value(state.clone())
            .context("not a mixture sampler state (expected seq_len, weights, loaders, …)")?;
        let weights = self.domain_map(|c| c.weight);
        // JSON may round a float in its last bit; anything closer is the same weight.
        let same_weights = saved.weights.len() == weights.len()
            && weights.iter().all(|(domain, weight)| {
                saved
                    .weights
                    .get(domain)
                    .is_some_and(|saved| (saved - weight).abs() < 1e-12)
            });
        ensure!(
            saved.seq_len == self.seq_len && same_weights,
            "the saved mixture (seq_len {}, weights {:?}) differs from this one (seq_len {}, \
             weights {weights:?}); resume with the configuration it was saved with",
            saved.seq_len,
            saved.weights,
            self.seq_len
        );
        // Validate every domain before changing any, so a failed restore leaves us intact.
        let mut restored = Vec::with_capacity(self.components.len());
        for component in &self.components {
            let domain = component.loader.packed().domain();
            let (Some(loader_state), Some(drawn)) =
                (saved.loaders.get(domain), saved.sequences_drawn.get(domain))
            else {
                bail!("the saved mixture has no state for domain `{domain}`");
            };
            restored.push((component.loader.cursor_from_state(loader_state)?, *drawn));
        }
        for (component, (cursor, drawn)) in self.components.iter_mut().zip(restored) {
            component.loader.set_cursor(cursor)?;
            component.sequences_drawn = drawn;
        }
        Ok(())
    }
}
