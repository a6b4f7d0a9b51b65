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
    pub fn find_cycle(&self) -> Option<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        fn visit(
            g: &Graph,
            i: usize,
            marks: &mut [Mark],
            path: &mut Vec<usize>,
        ) -> Option<Vec<String>> {
            marks[i] = Mark::OnPath;
            path.push(i);
            for input in g.inputs(&g.nodes[i].0) {
                let j = g.index[input];
                match marks[j] {
                    Mark::OnPath => {
                        let start = path.iter().position(|&p| p == j).unwrap_or(0);
                        // `path` runs downstream -> upstream; report it upstream first.
                        let mut cycle: Vec<String> = path[start..]
                            .iter()
                            .map(|&p| g.nodes[p].0.clone())
                            .collect();
                        cycle.reverse();
                        // Start at the stage defined first, so the report is stable.
                        let first = (0..cycle.len())
                            .min_by_key(|&k| g.index[&cycle[k]])
                            .unwrap_or(0);
                        cycle.rotate_left(first);
                        return Some(cycle);
                    }
                    Mark::New => {
                        if let Some(c) = visit(g, j, marks, path) {
                            return Some(c);
                        }
                    }
                    Mark::Done => {}
                }
            }
            path.pop();
            marks[i] = Mark::Done;
            None
        }
        let mut marks = vec![Mark::New; self.nodes.len()];
        (0..self.nodes.len()).find_map(|i| {
            if marks[i] == Mark::New {
                visit(self, i, &mut marks, &mut Vec::new())
            } else {
                None
            }
        })
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

    #[test]
    fn closures_follow_edges() {
        let g = graph(&[("a", &[]), ("b", &["a"]), ("c", &["b"]), ("d", &["a"])]);
        let down: Vec<_> = g.with_descendants(&["b".into()]).into_iter().collect();
        assert_eq!(down, ["b", "c"]);
        let up: Vec<_> = g.with_ancestors(&["c".into()]).into_iter().collect();
        assert_eq!(up, ["a", "b", "c"]);
    }
}
