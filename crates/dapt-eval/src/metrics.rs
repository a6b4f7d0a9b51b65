//! Classification metrics: accuracy, macro-F1 (scikit-learn's default: the unweighted mean of
//! per-class F1 over the classes that occur in the gold labels or the predictions, F1 = 0 for a
//! class never predicted correctly), and the majority-class baseline.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub accuracy: f64,
    pub macro_f1: f64,
    /// Examples scored.
    pub examples: u64,
}

/// Accuracy and macro-F1 of `predicted` against `gold` (labels in `0..classes`).
pub fn classification_metrics(gold: &[usize], predicted: &[usize], classes: usize) -> Metrics {
    assert_eq!(gold.len(), predicted.len(), "one prediction per example");
    let n = gold.len();
    let mut true_positive = vec![0u64; classes];
    let mut gold_count = vec![0u64; classes];
    let mut predicted_count = vec![0u64; classes];
    for (&g, &p) in gold.iter().zip(predicted) {
        assert!(g < classes && p < classes, "label out of range");
        gold_count[g] += 1;
        predicted_count[p] += 1;
        if g == p {
            true_positive[g] += 1;
        }
    }
    let correct: u64 = true_positive.iter().sum();
    let mut f1_sum = 0.0;
    let mut present = 0usize;
    for c in 0..classes {
        if gold_count[c] == 0 && predicted_count[c] == 0 {
            continue;
        }
        present += 1;
        // F1 = 2·TP / (2·TP + FP + FN) = 2·TP / (gold + predicted); 0 when TP = 0.
        f1_sum += 2.0 * true_positive[c] as f64 / (gold_count[c] + predicted_count[c]) as f64;
    }
    Metrics {
        accuracy: if n == 0 {
            0.0
        } else {
            correct as f64 / n as f64
        },
        macro_f1: if present == 0 {
            0.0
        } else {
            f1_sum / present as f64
        },
        examples: n as u64,
    }
}

/// The most frequent label of `labels` (ties: the lowest label).
pub fn majority_class(labels: &[usize], classes: usize) -> usize {
    let mut counts = vec![0u64; classes];
    for &l in labels {
        counts[l] += 1;
    }
    // max_by_key keeps the last maximum; scan for the first.
    let best = counts.iter().copied().max().unwrap_or(0);
    counts.iter().position(|&c| c == best).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macro_f1_by_hand() {
        // gold:      0 0 0 1 1 2
        // predicted: 0 0 1 1 2 2
        // class 0: TP 2, FP 0, FN 1 -> P 1, R 2/3, F1 0.8
        // class 1: TP 1, FP 1, FN 1 -> P 1/2, R 1/2, F1 0.5
        // class 2: TP 1, FP 1, FN 0 -> P 1/2, R 1, F1 2/3
        let gold = [0, 0, 0, 1, 1, 2];
        let predicted = [0, 0, 1, 1, 2, 2];
        let m = classification_metrics(&gold, &predicted, 3);
        assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-12);
        let expected = (0.8 + 0.5 + 2.0 / 3.0) / 3.0;
        assert!((m.macro_f1 - expected).abs() < 1e-12, "{}", m.macro_f1);
        assert_eq!(m.examples, 6);
    }

    #[test]
    fn classes_absent_from_gold_and_predictions_do_not_count() {
        // Class 2 never occurs: macro-F1 averages classes 0 and 1 only.
        let m = classification_metrics(&[0, 1], &[0, 0], 3);
        // class 0: TP 1, gold 1, pred 2 -> 2/3; class 1: TP 0 -> 0.
        assert!((m.macro_f1 - (2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert!((m.accuracy - 0.5).abs() < 1e-12);
    }

    #[test]
    fn majority_baseline_and_ties() {
        assert_eq!(majority_class(&[2, 2, 1, 0, 2], 3), 2);
        assert_eq!(majority_class(&[1, 0, 1, 0], 3), 0);
        let m = classification_metrics(&[2, 2, 1, 0, 2], &[2; 5], 3);
        assert!((m.accuracy - 0.6).abs() < 1e-12);
        // Only class 2 has F1 > 0: 2·3 / (3 + 5) = 0.75, averaged over 3 present classes.
        assert!((m.macro_f1 - 0.75 / 3.0).abs() < 1e-12);
    }
}
