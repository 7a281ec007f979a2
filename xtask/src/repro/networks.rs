//! The networks each experiment trains, for its report's `"networks"`: built untrained
//! from the same recipes the runs use, so that the report of a run and the
//! `--figures-only` rewrite of an older report record the same tables.

use petal_nn::Summary;
use petal_site::NetworkTable;
use petal_zoo::{bipyramidal, Options};

use super::training::RunSpec;
use super::{
    conv_demo, flowers102, flowers3, mnist, mnist_regularization, transfer, Experiment,
    ReproOptions,
};

/// The tables of `experiment`'s networks as `options` configure them; runs that train
/// the same network share its table.
pub fn tables(experiment: Experiment, options: &ReproOptions) -> anyhow::Result<Vec<NetworkTable>> {
    Ok(NetworkTable::of_runs(&summaries(experiment, options)?))
}

/// Each run of `experiment` (its name in the report) with the summary of its network.
fn summaries(
    experiment: Experiment,
    options: &ReproOptions,
) -> anyhow::Result<Vec<(String, Summary)>> {
    let from_specs = |specs: Vec<RunSpec>| -> anyhow::Result<Vec<(String, Summary)>> {
        specs
            .iter()
            .map(|spec| {
                let model = bipyramidal(&spec.network, spec.seed)?;
                Ok((spec.name.to_string(), model.summary()))
            })
            .collect()
    };
    match experiment {
        Experiment::ConvDemo => conv_demo::networks(),
        Experiment::Mnist => from_specs(vec![mnist::run_spec(options)]),
        Experiment::MnistRegularization => from_specs(mnist_regularization::runs(options)?),
        Experiment::Flowers3 => from_specs(flowers3::runs(options)),
        Experiment::Flowers102 => from_specs(flowers102::runs(options)),
        Experiment::Pretrained => {
            let entry = options.pretrained_entry()?;
            let model = entry.arch.build(&Options::default())?;
            Ok(vec![(entry.name.to_string(), model.summary())])
        }
        Experiment::Flowers3Transfer => transfer::networks(options.pretrained_entry()?, 3, options),
        Experiment::Flowers102Transfer => {
            transfer::networks(options.pretrained_entry()?, 102, options)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        options: ReproOptions,
    }

    fn options(flags: &[&str]) -> ReproOptions {
        Flags::parse_from(std::iter::once("repro").chain(flags.iter().copied())).options
    }

    #[test]
    fn runs_of_one_network_share_its_table() {
        let tables = tables(Experiment::MnistRegularization, &options(&[])).unwrap();
        let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["baseline", "+ dropout (0.25 / 0.5)", "+ batch norm"]
        );
        let baseline = &tables[0];
        assert!(baseline
            .runs
            .contains(&"+ label smoothing (0.1)".to_string()));
        assert!(baseline.runs.contains(&"+ L2 (1e-4)".to_string()));
        // The lecture's MNIST CNN: 32 and 64 filters of 3x3, two poolings, dense 128.
        let convs: Vec<usize> = baseline
            .layers
            .iter()
            .filter(|l| l.kind == "Conv2D")
            .map(|l| l.params)
            .collect();
        assert_eq!(convs, [3 * 3 * 32 + 32, 3 * 3 * 32 * 64 + 64]);
        assert_eq!(baseline.non_trainable, 0);
        // Batch norm's moving statistics are counted, not trained.
        assert!(tables[2].non_trainable > 0);
    }

    #[test]
    fn the_slides_convolution_shrinks_6x6_to_4x4_and_2x2() {
        let tables = tables(Experiment::ConvDemo, &options(&[])).unwrap();
        let shapes: Vec<&[usize]> = tables
            .iter()
            .map(|t| t.layers[0].output_shape.as_slice())
            .collect();
        assert_eq!(shapes, [[4, 4, 2], [2, 2, 2]]);
        assert!(tables.iter().all(|t| t.trainable == 2 * 9));
    }

    #[test]
    fn flower_networks_follow_the_image_size_and_the_mlp_has_no_convolution() {
        let tables = tables(Experiment::Flowers3, &options(&["--image-size", "64"])).unwrap();
        assert_eq!(tables.len(), 4);
        assert_eq!(tables[0].layers[0].output_shape, [64, 64, 32]);
        let mlp = tables.last().unwrap();
        assert!(mlp.name.starts_with("MLP"));
        assert!(mlp.layers.iter().all(|l| l.kind != "Conv2D"));
    }

    #[test]
    fn transfer_rows_differ_in_what_is_frozen() {
        let tables = tables(Experiment::Flowers3Transfer, &options(&[])).unwrap();
        let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names.len(), 3, "{names:?}");
        // (a): the head alone on the 1280 pooled features.
        assert_eq!(tables[0].trainable, 1280 * 3 + 3);
        // (b) trains the same head on the frozen base; (c) and (d) unfreeze the top.
        assert_eq!(tables[1].trainable, tables[0].trainable);
        assert!(tables[1].non_trainable > 3_000_000);
        assert!(tables[2].trainable > tables[1].trainable);
        assert_eq!(tables[2].runs.len(), 2);
    }
}
