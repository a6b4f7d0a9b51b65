//! The stage graph: topological order, cycles, ancestors and descendants.

use std::collections::{BTreeSet, HashMap};

/// Stages and their upstream inputs, in file order.
#[derive(Debug, Clone)]
pub struct Graph {
    nodes: Vec<(String, Vec<String>)>,
    index: HashMap<String, usize>,
}

impl Graph {
    pub fn new(nodes: Vec<(String, Vec<String>)>) -> Self {
        let index = nodes
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.clone(), i))
            .collect();
        Graph { nodes, index }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|(n, _)| n.as_str())
    }

    /// Upstream stages of `name` that exist in the graph.
    pub fn inputs(&self, name: &str) -> impl Iterator<Item = &str> {
        self.index
            .get(name)
            .into_iter()
            .flat_map(|&i| self.nodes[i].1.iter())
            .filter(|n| self.index.contains_key(*n))
            .map(String::as_str)
    }

    /// Stages that list `name` among their inputs.
    pub fn dependents(&self, name: &str) -> impl Iterator<Item = &str> {
        self.nodes
            .iter()
            .filter(move |(_, ins)| ins.iter().any(|i| i == name))
            .map(|(n, _)| n.as_str())
    }

    /// A cycle as a list of stage names, each an input of the next, if any.
    ///
    /// A depth-first search with an explicit stack: a recursive one overflowed the
    /// thread's stack (an abort, not an error) on a chain of ~10,000 stages listed
    /// downstream first (found by crates/dapt-dag/tests/fuzz.rs).
    pub fn find_cycle(&self) -> Option<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        let mut marks = vec![Mark::New; self.nodes.len()];
        for root in 0..self.nodes.len() {
            if marks[root] != Mark::New {
                continue;
            }
            // Runs downstream -> upstream: each stage and how many of its inputs
            // have been looked at.
            let mut path: Vec<(usize, usize)> = vec![(root, 0)];
            marks[root] = Mark::OnPath;
            while let Some(&(i, next)) = path.last() {
                let last = path.len() - 1;
                path[last].1 += 1;
                let Some(input) = self.inputs(&self.nodes[i].0).nth(next) else {
                    path.pop();
                    marks[i] = Mark::Done;
                    continue;
                };
                let j = self.index[input];
                match marks[j] {
                    Mark::OnPath => {
                        let start = path.iter().position(|&(p, _)| p == j).unwrap_or(0);
                        // Report it upstream first.
                        let mut cycle: Vec<String> = path[start..]
                            .iter()
                            .map(|&(p, _)| self.nodes[p].0.clone())
                            .collect();
                        cycle.reverse();
                        // Start at the stage defined first, so the report is stable.
                        let first = (0..cycle.len())
                            .min_by_key(|&k| self.index[&cycle[k]])
                            .unwrap_or(0);
                        cycle.rotate_left(first);
                        return Some(cycle);
                    }
                    Mark::New => {
                        marks[j] = Mark::OnPath;
                        path.push((j, 0));
                    }
                    Mark::Done => {}
                }
            }
        }
        None
    }

    /// All stages in an order where every stage follows its inputs; ties keep
    /// file order. Assumes the graph is acyclic (validation guarantees it).
    pub fn topological(&self) -> Vec<String> {
        let mut done = BTreeSet::new();
        let mut order = Vec::with_capacity(self.nodes.len());
        while order.len() < self.nodes.len() {
            let before = order.len();
            for (name, _) in &self.nodes {
                if !done.contains(name.as_str()) && self.inputs(name).all(|i| done.contains(i)) {
                    done.insert(name.as_str());
                    order.push(name.clone());
                }
            }
            if order.len() == before {
                break; // a cycle; validation reports it
            }
        }
        order
    }

    /// `names` and everything upstream of them.
    pub fn with_ancestors(&self, names: &[String]) -> BTreeSet<String> {
        self.closure(names, |g, n| g.inputs(n).map(str::to_string).collect())
    }

    /// `names` and everything downstream of them.
    pub fn with_descendants(&self, names: &[String]) -> BTreeSet<String> {
        self.closure(names, |g, n| g.dependents(n).map(str::to_string).collect())
    }

    fn closure(
        &self,
        names: &[String],
        next: impl Fn(&Graph, &str) -> Vec<String>,
    ) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = names.to_vec();
        while let Some(n) = todo.pop() {
            if seen.insert(n.clone()) {
                todo.extend(next(self, &n));
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> Graph {
        Graph::new(
            edges
                .iter()
                .map(|(n, ins)| (n.to_string(), ins.iter().map(|s| s.to_string()).collect()))
                .collect(),
        )
    }

    #[test]
    fn topological_order_puts_inputs_first() {
        let g = graph(&[("c", &["b"]), ("b", &["a"]), ("a", &[])]);
        assert_eq!(g.topological(), ["a", "b", "c"]);
    }

    #[test]
    fn finds_a_cycle_upstream_first() {
        let g = graph(&[("a", &["c"]), ("b", &["a"]), ("c", &["b"]), ("d", &[])]);
        let cycle = g.find_cycle().expect("cycle");
        assert_eq!(cycle.len(), 3);
        for w in cycle.windows(2) {
            assert!(
                g.inputs(&w[1]).any(|i| i == w[0]),
                "{} is not an input of {}",
                w[0],
                w[1]
            );
        }
        assert!(graph(&[("a", &[]), ("b", &["a"])]).find_cycle().is_none());
    }

    /// Found by tests/fuzz.rs: the recursive search overflowed the stack here.
    #[test]
    fn a_long_chain_listed_downstream_first_does_not_overflow_the_stack() {
        let n = 100_000;
        let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
        let chain = move |last_input: Vec<String>| {
            let mut nodes: Vec<(String, Vec<String>)> = (0..n - 1)
                .map(|i| (names[i].clone(), vec![names[i + 1].clone()]))
                .collect();
            nodes.push((names[n - 1].clone(), last_input));
            Graph::new(nodes)
        };
        // On a 2 MiB thread, like a test's or a worker's.
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                assert!(chain(vec![]).find_cycle().is_none());
                let cycle = chain(vec!["s0".into()]).find_cycle().expect("cycle");
                assert_eq!(cycle.len(), n);
                assert_eq!(
                    (cycle[0].as_str(), cycle[1].as_str()),
                    ("s0", &*format!("s{}", n - 1))
                );
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn closures_follow_edges() {
        let g = graph(&[("a", &[]), ("b", &["a"]), ("c", &["b"]), ("d", &["a"])]);
        let down: Vec<_> = g.with_descendants(&["b".into()]).into_iter().collect();
        assert_eq!(down, ["b", "c"]);
        let up: Vec<_> = g.with_ancestors(&["c".into()]).into_iter().collect();
        assert_eq!(up, ["a", "b", "c"]);
    }
}
