//! The networks of an experiment: each architecture it trains, recorded in its
//! `metrics.json` as the layer table Keras' `model.summary()` prints, with the runs that
//! train it; and that table on the experiment's page.

use maud::{html, Markup};
use petal_nn::Summary;
use serde::{Deserialize, Serialize};

/// Networks with more layers than this show their layer table folded (the totals stay
/// in view).
const FOLDED_ABOVE: usize = 30;

/// One architecture of an experiment and the runs (report rows) that train it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkTable {
    /// The first run that trains it.
    pub name: String,
    /// Every run that trains it, in the report's order.
    pub runs: Vec<String>,
    /// One line per layer.
    pub layers: Vec<LayerLine>,
    /// Parameters the optimizer updates.
    pub trainable: usize,
    /// Parameters it does not (frozen layers, batch norms' moving statistics).
    pub non_trainable: usize,
}

/// One layer of a [`NetworkTable`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerLine {
    /// The layer's name in the model.
    pub name: String,
    /// Its kind, as Keras names it (`Conv2D`).
    pub kind: String,
    /// Its output shape per sample.
    pub output_shape: Vec<usize>,
    /// Its parameters, trainable or not.
    pub params: usize,
    /// Its FLOPs per sample.
    pub flops: u64,
}

impl NetworkTable {
    /// The tables of `models` (run name, summary), one per distinct summary: runs whose
    /// networks are the same (layers and what is frozen) share the table of the first.
    ///
    /// ```
    /// use petal_nn::{layers::DenseConfig, Sequential};
    /// use petal_site::NetworkTable;
    ///
    /// let dense = |seed| Sequential::new(&[4], seed).add(DenseConfig::new(2)).unwrap().build().unwrap();
    /// let models = [
    ///     ("plain".to_string(), dense(1).summary()),
    ///     ("+ label smoothing".to_string(), dense(2).summary()),
    /// ];
    /// let tables = NetworkTable::of_runs(&models);
    /// assert_eq!(tables.len(), 1);
    /// assert_eq!(tables[0].runs, ["plain", "+ label smoothing"]);
    /// assert_eq!(tables[0].trainable, 4 * 2 + 2);
    /// ```
    pub fn of_runs(models: &[(String, Summary)]) -> Vec<Self> {
        let mut tables: Vec<(&Summary, Self)> = Vec::new();
        for (run, summary) in models {
            match tables.iter_mut().find(|(seen, _)| *seen == summary) {
                Some((_, table)) => table.runs.push(run.clone()),
                None => tables.push((summary, Self::new(run, summary))),
            }
        }
        tables.into_iter().map(|(_, table)| table).collect()
    }

    fn new(run: &str, summary: &Summary) -> Self {
        Self {
            name: run.to_string(),
            runs: vec![run.to_string()],
            layers: summary
                .rows
                .iter()
                .map(|row| LayerLine {
                    name: row.name.clone(),
                    kind: row.kind.to_string(),
                    output_shape: row.output_shape.clone(),
                    params: row.params,
                    flops: row.flops,
                })
                .collect(),
            trainable: summary.trainable,
            non_trainable: summary.non_trainable,
        }
    }

    /// FLOPs per sample of the whole network.
    pub fn flops(&self) -> u64 {
        self.layers.iter().map(|l| l.flops).sum()
    }
}

/// The page's section of `networks`: for each, the runs that train it and its layer
/// table with the totals.
pub fn networks_section(networks: &[NetworkTable]) -> Markup {
    let title = match networks.len() {
        0 => return html! {},
        1 => "The network",
        _ => "The networks",
    };
    html! {
        h2 { (title) } "\n"
        p {
            "Each layer's output shape for one sample (Keras writes the batch as "
            code { "None" } "), its parameters and the multiply-adds it costs per sample, counted twice as FLOPs; "
            code { "model.summary()" } " prints the same table."
        } "\n"
        @for network in networks {
            h3 { (network.name) } "\n"
            @if network.runs.len() > 1 {
                p.meta { "Runs that train this network: " (network.runs.join("; ")) "." } "\n"
            }
            p {
                (count(network.trainable + network.non_trainable)) " parameters ("
                (count(network.trainable)) " trainable, " (count(network.non_trainable)) " not), "
                (flops(network.flops())) " per sample."
            } "\n"
            @if network.layers.len() > FOLDED_ABOVE {
                details { summary { "The " (network.layers.len()) " layers" } (layer_table(network)) } "\n"
            } @else {
                (layer_table(network))
            }
        }
    }
}

fn layer_table(network: &NetworkTable) -> Markup {
    html! {
        div.scroll {
            table.layers {
                thead { tr { th { "Layer (type)" } th { "Output shape" } th { "Params" } th { "FLOPs" } } }
                "\n"
                tbody {
                    @for layer in &network.layers {
                        tr {
                            td { (layer.name) " (" (layer.kind) ")" }
                            td { (shape(&layer.output_shape)) }
                            td.num { (count(layer.params)) }
                            td.num { (count(layer.flops as usize)) }
                        }
                        "\n"
                    }
                }
            }
        }
        "\n"
    }
}

/// `(None, 28, 28, 32)`: the batch first, as Keras prints it.
fn shape(dims: &[usize]) -> String {
    let dims: Vec<String> = std::iter::once("None".to_string())
        .chain(dims.iter().map(usize::to_string))
        .collect();
    format!("({})", dims.join(", "))
}

/// `1,234,567`.
fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// `12.3 MFLOPs`.
fn flops(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e9 => format!("{:.2} GFLOPs", n / 1e9),
        n if n >= 1e6 => format!("{:.1} MFLOPs", n / 1e6),
        n if n >= 1e3 => format!("{:.1} kFLOPs", n / 1e3),
        n => format!("{n:.0} FLOPs"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, layers: usize) -> NetworkTable {
        NetworkTable {
            name: name.into(),
            runs: vec![name.into(), "+ L2".into()],
            layers: (0..layers)
                .map(|i| LayerLine {
                    name: format!("conv{i}"),
                    kind: "Conv2D".into(),
                    output_shape: vec![28, 28, 32],
                    params: 320,
                    flops: 451_584,
                })
                .collect(),
            trainable: 320 * layers,
            non_trainable: 0,
        }
    }

    #[test]
    fn numbers_read_as_keras_prints_them() {
        assert_eq!(shape(&[28, 28, 32]), "(None, 28, 28, 32)");
        assert_eq!(shape(&[]), "(None)");
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(3_504_872), "3,504,872");
        assert_eq!(flops(451_584), "451.6 kFLOPs");
        assert_eq!(flops(2_390_000_000), "2.39 GFLOPs");
    }

    #[test]
    fn each_network_gets_its_runs_totals_and_layers() {
        let html = networks_section(&[table("baseline", 3)]).into_string();
        assert!(html.contains("<h2>The network</h2>"), "{html}");
        assert!(html.contains("<h3>baseline</h3>"));
        assert!(html.contains("Runs that train this network: baseline; + L2."));
        assert!(html.contains("960 parameters (960 trainable, 0 not), 1.4 MFLOPs per sample"));
        assert_eq!(html.matches("<td>conv1 (Conv2D)</td>").count(), 1);
        assert!(!html.contains("<details>"));
        let long = networks_section(&[table("a", 31), table("b", 2)]).into_string();
        assert!(long.contains("<h2>The networks</h2>"));
        assert!(
            long.contains("<details><summary>The 31 layers</summary>"),
            "{long}"
        );
        assert_eq!(networks_section(&[]).into_string(), "");
    }

    #[test]
    fn layer_names_are_escaped() {
        let mut hostile = table("<script>", 1);
        hostile.layers[0].name = "<b>x</b>".into();
        let html = networks_section(&[hostile]).into_string();
        assert!(
            !html.contains("<script>") && !html.contains("<b>x"),
            "{html}"
        );
    }
}
