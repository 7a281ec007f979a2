//! The guides: pages that walk through the code a user copies. Each shows the source of
//! an example of the `petal` crate as it is (CI builds and runs every one, so a guide
//! never shows code that does not compile), with what to read in it and how to run it.

use maud::{html, PreEscaped};

use crate::page::Page;

/// One guide: a page of the site around an example's source.
pub struct Guide {
    /// The page's file name without `.html`, e.g. `guide-getting-started`.
    pub slug: &'static str,
    /// The page's title.
    pub title: &'static str,
    /// Paragraphs before the code (HTML, trusted: written here).
    intro: &'static [&'static str],
    /// How to run it.
    command: &'static str,
    /// The example's file name and source.
    file: &'static str,
    source: &'static str,
    /// What to notice in the code, after it.
    reading: &'static [&'static str],
}

/// Every guide, in reading order.
pub const GUIDES: [Guide; 5] = [
    Guide {
        slug: "guide-getting-started",
        title: "Getting started: the MNIST CNN",
        intro: &[
            "The lecture's first network in full: two convolution and pooling blocks, a dense layer and ten outputs, trained on \
             the handwritten digits of MNIST and tested on the 10,000 it never saw. If you know Keras, every line has its \
             counterpart: <code>Sequential</code>, <code>add</code>, <code>fit</code>, <code>evaluate</code>.",
            "Add <code>petal</code> to your <code>Cargo.toml</code>; <code>use petal::prelude::*</code> brings the layers, \
             optimizers and the trainer.",
        ],
        command: "cargo run --release --example train_mnist -- --epochs 3",
        file: "crates/petal/examples/train_mnist.rs",
        source: include_str!("../../petal/examples/train_mnist.rs"),
        reading: &[
            "<code>Sequential::new(&amp;[28, 28, 1], 42)</code> fixes the input shape (height, width, channels: Petal works in \
             NHWC, as Keras does) and the seed: the same seed gives the same weights and the same numbers on the same thread \
             count.",
            "<code>model.summary()</code> prints each layer's output shape and parameter count, as in the lecture's slides.",
            "<code>Validation::Split(0.1)</code> holds out the last tenth of the training digits, Keras' \
             <code>validation_split</code>; pass <code>Validation::Data(&amp;set)</code> for a set of your own.",
            "Three epochs reach close to 99% test accuracy; the <a href=\"mnist.html\">mnist page</a> shows the curves and what \
             the filters learned.",
        ],
    },
    Guide {
        slug: "guide-transfer-learning",
        title: "Transfer learning on your own photos",
        intro: &[
            "Put your photos in <code>DIR/train/&lt;class&gt;/*.jpg</code> and <code>DIR/test/&lt;class&gt;/*.jpg</code> \
             (and <code>DIR/val/</code> if you have one). An ImageNet-pretrained network computes features of every photo \
             once (they are cached on disk), a small classifier learns on them in seconds, and with <code>--fine-tune</code> \
             the network's top blocks are trained on with a ten times smaller learning rate.",
            "No photos at hand? <code>cargo xtask photo-folder DIR</code> makes such a folder from ten Oxford flower classes.",
        ],
        command: "cargo run --release --example transfer_learning -- --data DIR [--fine-tune block6a]",
        file: "crates/petal/examples/transfer_learning.rs",
        source: include_str!("../../petal/examples/transfer_learning.rs"),
        reading: &[
            "<code>weights.preprocessing.image_options()</code> prepares the photos exactly as the pretrained weights were \
             trained (crop, resize, normalization): mismatched preprocessing is the most common silent error of transfer \
             learning.",
            "<code>fold_for_inference</code> folds batch norm into the convolutions: the frozen base runs faster and gives the \
             same features.",
            "<code>Head::on_base</code> puts the trained classifier back on the full network, frozen; \
             <code>unfreeze_top</code> thaws the layers from the one you name up, except batch norms, which keep their \
             ImageNet statistics.",
            "On ten flower classes with 40 training photos each it reaches about 95% test accuracy in under half a minute on \
             two cores.",
        ],
    },
    Guide {
        slug: "guide-custom-layer",
        title: "Writing a new layer, with its gradient check",
        intro: &[
            "A layer is a config (what you pass to <code>Sequential::add</code>, which creates the parameters) and the layer \
             itself, whose <code>forward</code> is written with differentiable <code>Var</code> operations: the tape derives \
             the backward pass, so there is no gradient code to write and none to get wrong.",
            "Before training with it, <code>check_gradients</code> compares the tape's gradients with finite differences: the \
             same check every built-in layer passes.",
        ],
        command: "cargo run --release --example custom_layer",
        file: "crates/petal/examples/custom_layer.rs",
        source: include_str!("../../petal/examples/custom_layer.rs"),
        reading: &[
            "<code>init</code> receives the input shapes and returns the output shape: <code>Sequential</code> uses it to check \
             the network before any data flows.",
            "<code>check_gradients</code> moves each input element by <code>eps</code>, differences the objective in f64 and \
             compares with the tape's gradient: an element off by more than the tolerance (here 1e-2, relative) is an error \
             naming it.",
        ],
    },
    Guide {
        slug: "guide-reproduce",
        title: "Reproducing a lecture experiment",
        intro: &[
            "Each experiment of the lecture is one command, <code>cargo xtask repro &lt;experiment&gt;</code>: it fetches and \
             verifies the data (from <code>PETAL_MIRROR</code> on a machine without internet), trains, and writes \
             <code>docs/&lt;experiment&gt;/metrics.json</code> and its figures; <code>cargo xtask docs</code> then rebuilds \
             these pages from them. <code>--quick</code> runs a small smoke version, <code>--resume</code> continues an \
             interrupted run from its last checkpoint, bit for bit.",
            "The recipes are short files under <code>xtask/src/repro/</code> that call the library's public API only; the one \
             below is the MNIST experiment.",
        ],
        command: "cargo xtask repro mnist",
        file: "xtask/src/repro/mnist.rs",
        source: include_str!("../../../xtask/src/repro/mnist.rs"),
        reading: &[
            "Every experiment page of this site says what the lecture claims, what the run measured and whether the two \
             agree; the sentence is computed from the report, so a new run rewrites it.",
        ],
    },
    Guide {
        slug: "guide-distributed",
        title: "Training on several processes with MPI",
        intro: &[
            "When one machine is not enough, the same <code>fit</code> runs on many processes: synchronous data \
             parallelism with the semantics of PyTorch's DDP, on the MPI library a cluster already has. Each rank trains on \
             its own part of every batch, the gradients are averaged by an allreduce, and every rank takes the same \
             optimizer step. Turn it on with one setting, <code>FitConfig { distributed: Some(petal_distributed::launch(\
             timeout)?), .. }</code>; every <code>cargo xtask repro</code> takes it as <code>--distributed</code>.",
            "It needs an MPI library and a build with the <code>mpi</code> feature (the default build has no C \
             dependency): <code>apt-get install libopenmpi-dev openmpi-bin libclang-dev</code>. Across machines, list them \
             in a hostfile (<code>node1 slots=2</code>, one line each) and start the same binary at the same path: \
             <code>mpirun -n 8 --hostfile hosts target/release/xtask repro mnist --distributed</code>; under Slurm, \
             <code>srun -N 4 --ntasks-per-node=2 --cpus-per-task=8 target/release/xtask repro mnist \
             --distributed</code>.",
        ],
        command: "cargo build --release -p petal-distributed --features mpi --example data_parallel\n\
                  mpirun -n 2 target/release/examples/data_parallel --out two.safetensors",
        file: "crates/petal-distributed/examples/data_parallel.rs",
        source: include_str!("../../petal-distributed/examples/data_parallel.rs"),
        reading: &[
            "The batch size stays the global batch, split over the ranks, so the hyperparameters are those of one \
             process: the run above ends with the weights of <code>data_parallel</code> run alone, up to the order of the \
             sums (CI checks 1e-5 relative, and that two runs with the same seed, ranks and threads agree bit for bit).",
            "Batch norm normalizes each rank's part with its own statistics, as DDP does; \
             <code>Distributed { sync_batch_norm: true, .. }</code> (<code>--sync-batch-norm</code>) uses those of the \
             whole batch, as <code>SyncBatchNorm</code> does.",
            "Only rank 0 prints, saves checkpoints and writes reports. Seeds, batch, epochs, data sizes and a fingerprint \
             of the data are compared at the start, and a rank that differs is refused by name; a rank that dies or hangs \
             stops the others within the timeout, naming it, and <code>--resume</code> continues from the last checkpoint.",
            "Threads per rank default to the cores divided by the ranks on the machine. On two cores, <code>repro mnist \
             </code> with 2 ranks of 1 thread trained at 5760 images/s against 5679 for one process of 2 threads, 7.1% of \
             each step in the allreduce, to the same test accuracy (0.9921 against 0.9918).",
            "Past one machine the allreduce grows: a ring sends 2 (N-1)/N times the gradient bytes from every rank. \
             <code>cargo run -p petal-distributed --example scaling_table -- 20.6 421642 10</code> prints the model for \
             this network (20.6 ms of compute per step, 421,642 parameters, 10 us latency): above 80% efficiency up to 64 \
             ranks even at 10 Gb/s; larger networks or slower links reach the limit sooner.",
        ],
    },
];

impl Guide {
    /// The guide's page.
    pub fn render(&self) -> String {
        let body = html! {
            @for p in self.intro { p { (PreEscaped(p)) } "\n" }
            h2 { "Run it" } "\n"
            pre { code { (self.command) } } "\n"
            h2 { "The code" } "\n"
            p.meta { code { (self.file) } ", as CI builds and runs it" } "\n"
            pre.source { code { (self.source) } } "\n"
            h2 { "What to notice" } "\n"
            ul { "\n" @for r in self.reading { li { (PreEscaped(r)) } "\n" } } "\n"
        };
        Page {
            title: self.title,
            root: "",
            body,
            scripts: &[],
        }
        .render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_guide_shows_its_example_escaped_and_how_to_run_it() {
        for guide in &GUIDES {
            let page = guide.render();
            let escaped = |text: &str| html! { (text) }.into_string();
            assert!(page.contains(&format!(
                "<pre><code>{}</code></pre>",
                escaped(guide.command)
            )));
            assert!(page.contains(&escaped(guide.source)), "{}", guide.slug);
            assert!(
                !guide.source.is_empty() && guide.source.contains("fn "),
                "{}",
                guide.slug
            );
        }
        // Rust's generics and references arrive as entities, not markup.
        let transfer = GUIDES[1].render();
        assert!(transfer.contains("Result&lt;(), Box&lt;dyn std::error::Error&gt;&gt;"));
    }
}
