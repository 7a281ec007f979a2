//! What each experiment of the lecture shows, and whether Petal's run agrees: the
//! lecture's claim in our own words, a finding computed from the report's figures (never
//! a fixed sentence), and what to look at in each kind of figure.

use crate::reports::{highest, Report};
use crate::tables::{capitalize, grid_pair};

/// How a measurement stands against the lecture's claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The figures say what the lecture says.
    Agrees,
    /// The figures say otherwise.
    Disagrees,
    /// The differences are too small (or the run too short) to decide.
    NotClaimed,
}

impl Verdict {
    /// The word shown on the page, and its CSS class.
    pub fn label(self) -> (&'static str, &'static str) {
        match self {
            Verdict::Agrees => ("agrees with the lecture", "agrees"),
            Verdict::Disagrees => ("differs from the lecture", "differs"),
            Verdict::NotClaimed => ("too close to call", "open"),
        }
    }
}

/// What Petal measured, as a sentence, and how it stands against the claim.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// One or two sentences with the figures that decide.
    pub measured: String,
    /// Agrees, differs, or not claimed.
    pub verdict: Verdict,
}

/// Computes a finding from a report, with the site's reports at hand for claims that
/// compare experiments.
type Judge = fn(&Report, &[&Report]) -> Option<Finding>;

/// The lecture's side of one experiment.
pub struct Lesson {
    /// What the lecture shows or claims, paraphrased.
    pub claim: &'static str,
    judge: Judge,
}

impl Lesson {
    /// The lessons of the experiment `slug`, one per claim of the lecture (none for an
    /// experiment the lecture does not discuss).
    pub fn of(slug: &str) -> Vec<Lesson> {
        let claims: &[(&'static str, Judge)] = match slug {
            "conv-demo" => &[(
                "A filter slid over the image gives a large value where the image holds the filter's pattern; with stride 2 the filter \
                 skips every other position, so the 4x4 map of stride 1 shrinks to 2x2 and keeps only its even positions.",
                conv_demo,
            )],
            "mnist" => &[(
                "A small bipyramidal CNN (two conv/pool blocks, then dense layers) recognizes handwritten digits with about 99% test \
                 accuracy after a few epochs.",
                mnist,
            )],
            "mnist-regularization" => &[(
                "On MNIST, regularization (dropout, weight decay, batch norm, augmentation, ...) helps only slightly: the plain CNN \
                 barely overfits, so there is little to gain.",
                regularization,
            )],
            "flowers3" => &[
                (
                    "On three flower classes, the CNN trained from scratch overfits without help; augmentation and dropout narrow the \
                     gap between training and test accuracy, while adding batch norm did not improve the result.",
                    flowers3,
                ),
                (
                    "Compared to an MLP on the same pixels, the CNN learns relatively slowly: the MLP fits its training photos \
                     sooner.",
                    cnn_vs_mlp,
                ),
            ],
            "flowers102" => &[(
                "Trained from scratch on 102 flower classes with 10 photos each, a CNN generalizes very poorly: it learns the training \
                 photos by heart and recognizes few test photos, even with regularization.",
                flowers102,
            )],
            "pretrained" => &[(
                "A network pretrained on ImageNet recognizes everyday photos out of the box, and Grad-CAM shows that it looks at the \
                 object rather than the background.",
                pretrained,
            )],
            "flowers3-transfer" | "flowers102-transfer" => &[(
                "Features of an ImageNet-pretrained network make a far better start than training from scratch: a small classifier on \
                 them beats the from-scratch CNN by a wide margin, and fine-tuning the top blocks adds a little more.",
                transfer,
            )],
            _ => &[],
        };
        claims
            .iter()
            .map(|&(claim, judge)| Lesson { claim, judge })
            .collect()
    }

    /// The finding for `report`, when it has the figures the claim needs; `others` are the
    /// site's reports (for claims that compare experiments).
    pub fn finding(&self, report: &Report, others: &[&Report]) -> Option<Finding> {
        (self.judge)(report, others)
    }
}

/// What to look at in a figure, by its file name; `None` for files without a note.
pub fn how_to_read(file: &str) -> Option<&'static str> {
    let stem = file.rsplit('/').next().unwrap_or(file);
    let note = match stem {
        s if s.starts_with("curves") || s.starts_with("loss") => {
            "Follow the gap between the training (solid) and the validation (dashed) curves: where validation stops improving \
             while training goes on, the network has started to memorize. With one chart per run on a shared scale, compare where \
             the runs end, not single wiggles, and keep the seed spread of the table in mind."
        }
        s if s.starts_with("mlp_vs_cnn") => {
            "Left, per epoch; right, per second of training: an epoch of the MLP costs a fraction of the CNN's, so compare who \
             fits the training photos first on the clock, and who ends higher on the validation photos."
        }
        s if s.starts_with("confusion") => {
            "The diagonal holds the correct answers; a bright cell off it is a pair of classes the network mixes up (row: true \
             class, column: predicted)."
        }
        s if s.starts_with("misclassified") => {
            "Are the mistakes ones a person could make too? Ambiguous shapes suggest the data, not the network, is at its limit."
        }
        s if s.starts_with("filters") => {
            "First-layer filters of a trained CNN look like small edge and colour detectors; noise-like filters mean too little \
             training."
        }
        s if s.starts_with("feature_maps") => {
            "Deeper maps are smaller and more abstract: early ones still show the input's edges, later ones only where a pattern \
             was found."
        }
        s if s.starts_with("saliency") || s.starts_with("gradcam") => {
            "Warm colours mark what raised the predicted class's score most; on a sound model they sit on the object, not on the \
             background."
        }
        s if s.starts_with("augmentation") => {
            "Each row is one photo and random variants of it: the network never sees the same picture twice, which is what fights \
             overfitting."
        }
        s if s.contains("stride") => {
            "Large values (bright) sit where the image matches the filter; compare the stride-2 map with every other cell of the \
             stride-1 map."
        }
        s if s.contains("edges") => "Bright lines are where brightness changes fast across (vertical) or along (horizontal) the image.",
        _ => return None,
    };
    Some(note)
}

fn percent(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

fn conv_demo(report: &Report, _: &[&Report]) -> Option<Finding> {
    let maps: Vec<(&str, Vec<Vec<f64>>)> = report
        .metrics
        .get("maps")?
        .as_array()?
        .iter()
        .filter_map(grid_pair)
        .collect();
    let grid = |name: &str| {
        maps.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, g)| g.clone())
    };
    let mut checked = Vec::new();
    let mut all_match = true;
    for filter in ["diagonal", "vertical"] {
        let (Some(one), Some(two)) = (
            grid(&format!("{filter}_stride1")),
            grid(&format!("{filter}_stride2")),
        ) else {
            continue;
        };
        let sampled: Vec<Vec<f64>> = one
            .iter()
            .step_by(2)
            .map(|r| r.iter().step_by(2).copied().collect())
            .collect();
        all_match &= sampled == two;
        let peak = one.iter().flatten().copied().fold(f64::MIN, f64::max);
        checked.push(format!(
            "the {filter} filter peaks at {peak} on the 4x4 map, and its 2x2 stride-2 map {} the 4x4 map's even positions",
            if sampled == two { "equals" } else { "differs from" }
        ));
    }
    if checked.is_empty() {
        return None;
    }
    Some(Finding {
        measured: format!("{}.", capitalize(&checked.join("; "))),
        verdict: if all_match {
            Verdict::Agrees
        } else {
            Verdict::Disagrees
        },
    })
}

fn mnist(report: &Report, _: &[&Report]) -> Option<Finding> {
    let (name, test) = report.column("test_accuracy").into_iter().next()?;
    let epochs = report.column("epochs").first().map_or(0.0, |(_, e)| *e);
    Some(Finding {
        measured: format!(
            "Petal's {name} reached {} test accuracy after {epochs} epochs.",
            percent(test)
        ),
        verdict: if test >= 0.985 {
            Verdict::Agrees
        } else {
            Verdict::Disagrees
        },
    })
}

/// The spread between seeds: the largest of the `test_accuracy_std` column `stds` in
/// the rows `compared` keeps, when they were run over several seeds.
fn seed_spread(stds: &[(String, f64)], compared: impl Fn(&str) -> bool) -> Option<f64> {
    let spreads: Vec<f64> = stds
        .iter()
        .filter(|(name, _)| compared(name))
        .map(|(_, s)| *s)
        .collect();
    (!spreads.is_empty()).then(|| spreads.iter().copied().fold(0.0, f64::max))
}

/// How a difference between two rows' mean test accuracies stands against the seed
/// spread: differences smaller than the spread are not claimed, and beyond it only a
/// gain of at least the lesson's tolerance is.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Difference {
    /// Within the spread (the spread given): no row is claimed better.
    WithinSpread(f64),
    /// Larger than the spread, and a gain of at least the tolerance.
    Gain,
    /// Larger than the spread, but a loss or a gain under the tolerance.
    NoGain,
    /// One seed per row: no spread to judge by.
    OneSeed,
}

impl Difference {
    /// `difference` (the compared row's accuracy minus the reference's) against the seed
    /// `spread` (none with one seed), gains under `tolerance` not counting as gains.
    fn of(difference: f64, spread: Option<f64>, tolerance: f64) -> Self {
        match spread {
            Some(spread) if difference.abs() <= spread => Difference::WithinSpread(spread),
            Some(_) if difference >= tolerance => Difference::Gain,
            Some(_) => Difference::NoGain,
            None => Difference::OneSeed,
        }
    }
}

fn points(x: f64) -> String {
    format!("{:.2} points", 100.0 * x)
}

/// A row's mean test accuracy, with its spread over seeds when the `test_accuracy_std`
/// column `stds` has one.
fn with_spread(stds: &[(String, f64)], row: &str, mean: f64) -> String {
    match named(stds, row) {
        Some((_, std)) => format!("{} ± {:.2}", percent(mean), 100.0 * std),
        None => percent(mean),
    }
}

fn regularization(report: &Report, _: &[&Report]) -> Option<Finding> {
    let accuracies = report.column("test_accuracy");
    let (_, baseline) = accuracies.iter().find(|(n, _)| n == "baseline")?.clone();
    let others: Vec<(String, f64)> = accuracies
        .iter()
        .filter(|(n, _)| n != "baseline")
        .cloned()
        .collect();
    let (best_name, best) = highest(&others)?.clone();
    let gain = best - baseline;
    let measured = format!(
        "The baseline reached {}; the best technique, {best_name}, {} ({} {}).",
        percent(baseline),
        percent(best),
        if gain >= 0.0 {
            "a gain of"
        } else {
            "a loss of"
        },
        points(gain.abs())
    );
    // A gain beyond the seed spread but under one point is no gain.
    let stds = report.column("test_accuracy_std");
    let (measured, verdict) = match Difference::of(gain, seed_spread(&stds, |_| true), 0.01) {
        Difference::WithinSpread(spread) => (
            format!(
                "{measured} That is within the spread between seeds ({}), so no technique is claimed better than another.",
                points(spread)
            ),
            Verdict::Agrees,
        ),
        Difference::NoGain => (
            format!("{measured} Larger than the seed spread, but still under one point: a slight help."),
            Verdict::Agrees,
        ),
        Difference::Gain => (measured, Verdict::Disagrees),
        Difference::OneSeed => (
            format!(
                "{measured} These come from one seed, whose run-to-run spread is of the same size, so the ranking is not claimed."
            ),
            Verdict::NotClaimed,
        ),
    };
    Some(Finding { measured, verdict })
}

fn named<'a>(values: &'a [(String, f64)], prefix: &str) -> Option<&'a (String, f64)> {
    values.iter().find(|(n, _)| n.starts_with(prefix))
}

fn flowers3(report: &Report, _: &[&Report]) -> Option<Finding> {
    let test = report.column("test_accuracy");
    let train = report.column("train_accuracy");
    let (_, plain) = named(&test, "(a)")?;
    let (_, regularized) = named(&test, "(b)")?;
    let (_, with_bn) = named(&test, "(c)")?;
    let seeds = report
        .rows()
        .filter_map(|row| row.get("seed_test_accuracies")?.as_array().map(Vec::len))
        .max()
        .map_or(String::new(), |n| format!(" (mean ± std over {n} seeds)"));
    let stds = report.column("test_accuracy_std");
    let gap = |row: &str, test: f64| named(&train, row).map(|(_, t)| t - test);
    let mut measured = format!(
        "Test accuracy{seeds}: {} without regularization, {} with augmentation and dropout, {} with batch norm added.",
        with_spread(&stds, "(a)", *plain),
        with_spread(&stds, "(b)", *regularized),
        with_spread(&stds, "(c)", *with_bn)
    );
    if let (Some(a), Some(b)) = (gap("(a)", *plain), gap("(b)", *regularized)) {
        measured += &format!(
            " The train-test gap goes from {:.1} to {:.1} points.",
            100.0 * a,
            100.0 * b
        );
    }
    // Batch norm "did not improve": no gain beyond the seed spread (with one seed: beyond
    // one test photo in a hundred).
    let change = with_bn - regularized;
    let spread = seed_spread(&stds, |row| {
        row.starts_with("(b)") || row.starts_with("(c)")
    });
    let (sentence, verdict) = match Difference::of(change, spread, 0.0) {
        Difference::WithinSpread(spread) => (
            format!(
                "Batch norm changes the test accuracy by {}, within the spread between seeds ({}): no improvement is claimed.",
                points(change),
                points(spread)
            ),
            Verdict::Agrees,
        ),
        Difference::NoGain => (
            format!("Batch norm lowers the test accuracy by {}, more than the seed spread.", points(-change)),
            Verdict::Agrees,
        ),
        Difference::Gain => (
            format!("Batch norm raises the test accuracy by {}, more than the seed spread.", points(change)),
            Verdict::Disagrees,
        ),
        Difference::OneSeed => (
            "These come from one seed each, so the batch-norm row is only judged against one test photo in a hundred.".to_string(),
            match Difference::of(change, Some(ONE_PHOTO_IN_100), 0.0) {
                Difference::Gain => Verdict::Disagrees,
                _ => Verdict::Agrees,
            },
        ),
    };
    Some(Finding {
        measured: format!("{measured} {sentence}"),
        verdict,
    })
}

/// The training accuracy the MLP and the CNN race to.
const FIT_THRESHOLD: f64 = 0.9;

/// The first epoch (1-based) and the training seconds until then at which `row`'s
/// training accuracy reached [`FIT_THRESHOLD`] (its first seed's curve).
fn time_to_fit(report: &Report, row: &str) -> Option<(usize, f64)> {
    let accuracy = report.history(row, "accuracy");
    let seconds = report.history(row, "seconds");
    let epoch = accuracy.iter().position(|&a| a >= FIT_THRESHOLD)?;
    Some((epoch + 1, seconds.iter().take(epoch + 1).sum()))
}

/// The spread a one-seed difference is judged against: one test photo in a hundred.
const ONE_PHOTO_IN_100: f64 = 0.01;

fn cnn_vs_mlp(report: &Report, _: &[&Report]) -> Option<Finding> {
    let test = report.column("test_accuracy");
    let (mlp_name, mlp_test) = named(&test, "MLP")?;
    let (cnn_name, cnn_test) = named(&test, "(a)")?;
    let (mlp_fit, cnn_fit) = (time_to_fit(report, mlp_name), time_to_fit(report, cnn_name));
    let reached = |fit: Option<(usize, f64)>, name: &str| match fit {
        Some((epoch, seconds)) => {
            format!("{name} after {epoch} epochs ({seconds:.0} s)")
        }
        None => format!("{name} never"),
    };
    let mut measured = format!(
        "Training accuracy reached {:.0}%: {}, {}.",
        100.0 * FIT_THRESHOLD,
        reached(mlp_fit, "the MLP"),
        reached(cnn_fit, "the CNN (a)")
    );
    let difference = cnn_test - mlp_test;
    let stds = report.column("test_accuracy_std");
    let spread = seed_spread(&stds, |row| row == mlp_name || row == cnn_name);
    measured += &format!(
        " On test photos the CNN reached {}, the MLP {}{}.",
        with_spread(&stds, cnn_name, *cnn_test),
        with_spread(&stds, mlp_name, *mlp_test),
        match Difference::of(difference, spread, 0.0) {
            Difference::WithinSpread(_) => ": a difference within the seed spread, not claimed",
            _ => "",
        }
    );
    let verdict = match (mlp_fit, cnn_fit) {
        (Some((_, mlp)), Some((_, cnn))) if mlp < cnn => Verdict::Agrees,
        (Some(_), None) => Verdict::Agrees,
        (None, None) => Verdict::NotClaimed,
        _ => Verdict::Disagrees,
    };
    Some(Finding { measured, verdict })
}

fn flowers102(report: &Report, _: &[&Report]) -> Option<Finding> {
    let test = report.column("test_accuracy");
    let train = report.column("train_accuracy");
    let (best_name, best) = highest(&test)?;
    let (first_name, first_test) = test.first()?;
    let first_train = named(&train, first_name).map(|(_, t)| *t)?;
    Some(Finding {
        measured: format!(
            "{first_name} learned {} of its training photos but only {} of the test photos; the best run, {best_name}, reached {} on test.",
            percent(first_train),
            percent(*first_test),
            percent(*best)
        ),
        verdict: if *best < 0.6 && first_train - first_test > 0.3 {
            Verdict::Agrees
        } else {
            Verdict::Disagrees
        },
    })
}

fn pretrained(report: &Report, _: &[&Report]) -> Option<Finding> {
    let photos = report.metrics.get("photos")?.as_array()?;
    let named: Vec<String> = photos
        .iter()
        .filter_map(|p| {
            let image = p.get("image")?.as_str()?;
            let file = image.rsplit('/').next().unwrap_or(image);
            let top = p.get("top5")?.as_array()?.first()?.as_array()?;
            let class = top.first()?.as_str()?;
            let probability = top.get(1)?.as_f64()?;
            Some(format!("{file}: {class} ({:.0}%)", 100.0 * probability))
        })
        .collect();
    if named.is_empty() {
        return None;
    }
    Some(Finding {
        measured: format!("Top class per photo: {}.", named.join("; ")),
        verdict: Verdict::NotClaimed,
    })
}

fn transfer(report: &Report, others: &[&Report]) -> Option<Finding> {
    let test = report.column("test_accuracy");
    let (_, features) = named(&test, "(a)")?;
    let fine_tuned = test
        .iter()
        .filter(|(n, _)| n.contains("fine-tune"))
        .map(|(_, a)| *a)
        .reduce(f64::max);
    let scratch_slug = report.slug.trim_end_matches("-transfer");
    let scratch = others
        .iter()
        .find(|r| r.slug == scratch_slug)
        .map(|r| r.column("test_accuracy"))
        .and_then(|c| c.iter().map(|(_, a)| *a).reduce(f64::max));
    let mut measured = format!(
        "A dense classifier on the pretrained features reached {} test accuracy",
        percent(*features)
    );
    if let Some(tuned) = fine_tuned {
        measured += &format!(", fine-tuning the top blocks {}", percent(tuned));
    }
    if let Some(scratch) = scratch {
        measured += &format!(
            "; the best CNN trained from scratch on the same photos ({scratch_slug}) reached {}",
            percent(scratch)
        );
    }
    measured += ".";
    // Far better: at least ten points above from scratch (or near-perfect when from
    // scratch is already high); fine-tuning adds or at least keeps what (a) reached.
    let beats_scratch = scratch.map(|s| *features >= (s + 0.1).min(0.98));
    let tuning_holds = fine_tuned.map(|t| t + 0.005 >= *features);
    let verdict = match (beats_scratch, tuning_holds) {
        (Some(false), _) | (_, Some(false)) => Verdict::Disagrees,
        (Some(true), _) => Verdict::Agrees,
        (None, _) => Verdict::NotClaimed,
    };
    Some(Finding { measured, verdict })
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;

    fn report(slug: &str, metrics: Value) -> Report {
        Report {
            slug: slug.to_string(),
            metrics: metrics.as_object().expect("an object").clone(),
            figures: Vec::new(),
            networks: Vec::new(),
        }
    }

    fn judge(slug: &str, metrics: Value) -> Finding {
        judge_claim(slug, 0, metrics)
    }

    /// The finding of the experiment's claim number `claim`.
    fn judge_claim(slug: &str, claim: usize, metrics: Value) -> Finding {
        Lesson::of(slug)
            .into_iter()
            .nth(claim)
            .expect("a lesson")
            .finding(&report(slug, metrics), &[])
            .expect("a finding")
    }

    #[test]
    fn the_verdict_follows_the_figures() {
        let good = judge(
            "mnist",
            json!({"runs": [{"name": "cnn", "epochs": 12, "test_accuracy": 0.9921}]}),
        );
        assert_eq!(good.verdict, Verdict::Agrees);
        assert!(good.measured.contains("99.21%"), "{}", good.measured);
        let poor = judge(
            "mnist",
            json!({"runs": [{"name": "cnn", "epochs": 1, "test_accuracy": 0.9}]}),
        );
        assert_eq!(poor.verdict, Verdict::Disagrees);
    }

    #[test]
    fn regularization_differences_inside_the_seed_spread_are_not_ranked() {
        let rows = |std: Option<f64>| {
            let mut rows = json!([{"name": "baseline", "test_accuracy": 0.9885},
                                  {"name": "+ dropout", "test_accuracy": 0.9901}]);
            if let Some(std) = std {
                for row in rows.as_array_mut().unwrap() {
                    row["test_accuracy_std"] = json!(std);
                }
            }
            json!({ "runs": rows })
        };
        let single_seed = judge("mnist-regularization", rows(None));
        assert_eq!(single_seed.verdict, Verdict::NotClaimed);
        assert!(
            single_seed.measured.contains("+ dropout"),
            "{}",
            single_seed.measured
        );
        let noisy = judge("mnist-regularization", rows(Some(0.002)));
        assert_eq!(noisy.verdict, Verdict::Agrees);
        assert!(
            noisy.measured.contains("within the spread"),
            "{}",
            noisy.measured
        );
    }

    #[test]
    fn conv_demo_checks_that_stride_two_samples_stride_one() {
        let maps = |two: [[f64; 2]; 2]| {
            json!({"maps": [["diagonal_stride1", [[3, -1, -3, -1], [-3, 1, 0, -3], [-3, -3, 0, 1], [3, -2, -2, -1]]],
                            ["diagonal_stride2", two]]})
        };
        let right = judge("conv-demo", maps([[3.0, -3.0], [-3.0, 0.0]]));
        assert_eq!(right.verdict, Verdict::Agrees, "{}", right.measured);
        let wrong = judge("conv-demo", maps([[3.0, -1.0], [-3.0, 0.0]]));
        assert_eq!(wrong.verdict, Verdict::Disagrees);
    }

    #[test]
    fn transfer_is_compared_with_training_from_scratch() {
        let scratch = report(
            "flowers102",
            json!({"runs": [{"name": "(a)", "test_accuracy": 0.46}]}),
        );
        let transfer = report(
            "flowers102-transfer",
            json!({"rows": [{"name": "(a) features", "test_accuracy": 0.835},
                            {"name": "(c) fine-tune block5a..", "test_accuracy": 0.87}]}),
        );
        let lesson = &Lesson::of("flowers102-transfer")[0];
        let finding = lesson.finding(&transfer, &[&scratch]).unwrap();
        assert_eq!(finding.verdict, Verdict::Agrees);
        assert!(
            finding.measured.contains("46.00%") && finding.measured.contains("87.00%"),
            "{}",
            finding.measured
        );
        let without_scratch = lesson.finding(&transfer, &[]).unwrap();
        assert_eq!(without_scratch.verdict, Verdict::NotClaimed);
    }

    /// A flowers3 report: (a) plain at 93% on test, (b) regularized at 98%, (c) with
    /// batch norm at `with_bn`; with `std`, every row has that spread over 3 seeds.
    fn flowers3_report(with_bn: f64, std: Option<f64>) -> Value {
        let mut runs = json!([
            {"name": "(a) plain", "train_accuracy": 1.0, "test_accuracy": 0.93},
            {"name": "(b) regularized", "train_accuracy": 0.97, "test_accuracy": 0.98},
            {"name": "(c) (b) + batch norm", "train_accuracy": 0.99, "test_accuracy": with_bn}]);
        if let Some(std) = std {
            for row in runs.as_array_mut().unwrap() {
                row["test_accuracy_std"] = json!(std);
            }
            runs[0]["seed_test_accuracies"] = json!([0.92, 0.93, 0.94]);
        }
        json!({ "runs": runs })
    }

    #[test]
    fn flowers_from_scratch_verdicts_follow_the_gaps() {
        let flowers3 = |with_bn: f64| flowers3_report(with_bn, None);
        let no_gain = judge("flowers3", flowers3(0.975));
        assert_eq!(no_gain.verdict, Verdict::Agrees);
        assert!(
            no_gain.measured.contains("from 7.0 to -1.0 points"),
            "{}",
            no_gain.measured
        );
        assert_eq!(
            judge("flowers3", flowers3(0.999)).verdict,
            Verdict::Disagrees
        );

        let flowers102 = |test: f64| json!({"runs": [{"name": "(a) plain", "train_accuracy": 1.0, "test_accuracy": test}]});
        assert_eq!(
            judge("flowers102", flowers102(0.14)).verdict,
            Verdict::Agrees
        );
        assert_eq!(
            judge("flowers102", flowers102(0.9)).verdict,
            Verdict::Disagrees
        );
    }

    #[test]
    fn batch_norm_is_judged_against_the_seed_spread() {
        let flowers3 = |with_bn: f64, std: f64| flowers3_report(with_bn, Some(std));
        // +1.5 points, inside a 2-point spread: not an improvement.
        let within = judge("flowers3", flowers3(0.995, 0.02));
        assert_eq!(within.verdict, Verdict::Agrees);
        assert!(
            within.measured.contains("over 3 seeds")
                && within.measured.contains("99.50% ± 2.00")
                && within
                    .measured
                    .contains("within the spread between seeds (2.00 points)"),
            "{}",
            within.measured
        );
        // The same +1.5 points with a 0.5-point spread is an improvement: the lecture's
        // "did not improve" does not hold.
        let beyond = judge("flowers3", flowers3(0.995, 0.005));
        assert_eq!(beyond.verdict, Verdict::Disagrees);
        assert!(
            beyond
                .measured
                .contains("raises the test accuracy by 1.50 points"),
            "{}",
            beyond.measured
        );
        let worse = judge("flowers3", flowers3(0.95, 0.005));
        assert_eq!(worse.verdict, Verdict::Agrees);
        assert!(worse.measured.contains("lowers"), "{}", worse.measured);
    }

    #[test]
    fn the_mlp_comparison_races_to_the_same_training_accuracy() {
        let curve = |accuracy: &[f64], seconds: f64| {
            let epochs: Vec<Value> = accuracy
                .iter()
                .map(|a| json!({"accuracy": a, "seconds": seconds}))
                .collect();
            json!({ "epochs": epochs })
        };
        let report = |mlp: &[f64], cnn: &[f64]| {
            json!({"runs": [
                {"name": "(a) plain", "test_accuracy": 0.93, "test_accuracy_std": 0.01, "history": curve(cnn, 7.0)},
                {"name": "MLP: dense", "test_accuracy": 0.80, "test_accuracy_std": 0.02, "history": curve(mlp, 1.0)}]})
        };
        let mlp_first = judge_claim("flowers3", 1, report(&[0.5, 0.95], &[0.4, 0.6, 0.92]));
        assert_eq!(mlp_first.verdict, Verdict::Agrees);
        assert!(
            mlp_first.measured.contains("the MLP after 2 epochs (2 s)")
                && mlp_first
                    .measured
                    .contains("the CNN (a) after 3 epochs (21 s)")
                && mlp_first
                    .measured
                    .contains("the CNN reached 93.00% ± 1.00, the MLP 80.00% ± 2.00."),
            "{}",
            mlp_first.measured
        );
        // The race is in seconds: 8 cheap MLP epochs take longer than one CNN epoch.
        let slow_mlp = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.95];
        let cnn_first = judge_claim("flowers3", 1, report(&slow_mlp, &[0.95]));
        assert_eq!(cnn_first.verdict, Verdict::Disagrees);
        let neither = judge_claim("flowers3", 1, report(&[0.5], &[0.6]));
        assert_eq!(neither.verdict, Verdict::NotClaimed);
        assert!(
            neither.measured.contains("the MLP never"),
            "{}",
            neither.measured
        );
    }

    #[test]
    fn every_figure_kind_of_the_repros_has_a_reading_note() {
        for file in [
            "curves.png",
            "loss.png",
            "mlp_vs_cnn.png",
            "confusion.png",
            "gradcam.png",
            "feature_maps_conv2d.png",
            "diagonal_stride1.png",
        ] {
            assert!(how_to_read(file).is_some(), "{file}");
        }
        assert_eq!(how_to_read("something_else.png"), None);
    }
}
