//! Depth-first inference: how many images [`Model::predict`] sends through the whole
//! network at a time.
//!
//! Layer by layer over a whole batch, every layer writes the batch's feature maps to
//! memory and the next layer reads them back: MobileNetV2's 112x112x96 maps are 4.8 MB
//! an image, 77 MB for a batch of 16. Run a few images at a time through all the
//! layers, with the chunks in parallel, and a chunk's maps stay in the core's cache
//! between one layer and the next. The price: each chunk reads every weight again.
//! That is cheap when the weights stay in the shared cache, or when they are fewer bytes
//! than the feature maps a chunk keeps out of memory, and dear otherwise (ResNet18's
//! 47 MB of weights against its 17 MB of maps an image).
//!
//! [`InferenceFootprint::images_per_chunk`] picks the chunk: as many images as fit their largest layer
//! (its inputs and output) in [`CHUNK_BYTES`], at least one, and the whole batch when
//! the weights fail both tests above. The kernels compute an image's values in the
//! same order whatever the batch, except where a product has one row: the gemm crate
//! then takes its matrix-vector path, which sums in another order (a dense layer on one
//! image, or a 1x1 convolution on one image of one pixel). So the layers after the
//! feature maps become vectors ([`InferenceFootprint::head`]) run once over the whole
//! batch, after the chunks, and a chunked prediction gives the same bits as one pass
//! unless a 1x1 convolution on 1x1 maps comes before the head (before, MobileNetV2's
//! and EfficientNet-Lite0's predictions differed, in chunks of one image).
//! In one process, the two ways alternating (a scratch program, 16 rounds of 2
//! predictions of 16 images, medians, 2 threads, three runs), MobileNetV2 ran 3.2%,
//! 4.7% and 3.9% faster with its head over the batch; EfficientNet-Lite0 -4.9%, +4.7%
//! and +0.2%, no change within the noise.
//!
//! `xtask bench --only <row> --repeats 5`, 2 threads, batches cut by hand into chunks
//! of the size shown, two runs each, images/s, whole batch -> chunks: MobileNetV2
//! (batch 16) 132.8 / 151.3 -> 189.1 / 180.4 (1 image), 148.4 / 185.7 (2);
//! EfficientNet-Lite0 119.3 / 119.6 -> 146.8 / 142.4 (1), 152.6 / 130.1 (2); Keras
//! MNIST (batch 128) 25550 / 26005 -> 31167 / 31419 (8), 28910 / 29374 (16); ResNet18
//! 75.7 / 74.8 -> 50.9 / 56.7 (1), 68.2 / 63.2 (2). With the chunks chosen here, and
//! [`Dense`](crate::layers::Dense) reading its stored kernel instead of copying it
//! per chunk, release binaries before and after alternating, 3 pairs, medians, img/s:
//! MobileNetV2 147.0 -> 190.3, EfficientNet-Lite0 129.8 -> 143.8, Keras MNIST
//! 29421 -> 35042, ResNet18 (one pass) 83.1 -> 83.3.

use crate::layers::LayerKind;
use crate::{Model, ModelNode, NodeId};

/// Bytes of one layer's inputs and output a chunk may hold: a core's L2 (1 MiB here).
const CHUNK_BYTES: usize = 1 << 20;

/// Weights this many bytes or fewer stay in the shared cache (half of this machine's
/// 32 MiB L3) while the chunks read them again.
const RESIDENT_WEIGHT_BYTES: usize = 16 << 20;

/// What the choice of chunk reads off a model, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InferenceFootprint {
    /// Every parameter.
    pub weights: usize,
    /// Every layer output of one image (layers folded into another write none).
    pub maps_per_image: usize,
    /// The largest one layer's inputs and output for one image.
    pub largest_layer_per_image: usize,
    /// Where the chunks end and the rest of the network runs once over the whole batch:
    /// the first node whose output, like every later one's, is one vector per image (a
    /// classifier head, after global pooling or flattening), when no later node reads
    /// one before it. In chunks of one image, MobileNetV2's 1280x1000 classifier is a
    /// matrix-vector product that reads its 5 MB of weights for every image; over the
    /// batch it reads them once. `None` when no such node comes before the output.
    pub head: Option<NodeId>,
}

impl InferenceFootprint {
    /// The footprint of `model`.
    ///
    /// ```
    /// use petal_nn::layers::{Conv2dConfig, DenseConfig, GlobalAvgPoolConfig};
    /// use petal_nn::{InferenceFootprint, Sequential};
    /// let model = Sequential::new(&[32, 32, 3], 0)
    ///     .add(Conv2dConfig::new(64, 3))?
    ///     .add(GlobalAvgPoolConfig::default())?
    ///     .add(DenseConfig::new(10))?
    ///     .build()?;
    /// let footprint = InferenceFootprint::of(&model);
    /// // The convolution reads 32x32x3 floats an image and writes 30x30x64.
    /// assert_eq!(footprint.largest_layer_per_image, (32 * 32 * 3 + 30 * 30 * 64) * 4);
    /// // 1 MiB holds 4 images of it: a batch of 64 goes in chunks of 4 or fewer.
    /// assert!(footprint.images_per_chunk(64) <= 4);
    /// // The chunks end at the pooling (node 2); the dense layer then runs once.
    /// assert_eq!(footprint.head.map(|node| node.index()), Some(2));
    /// # Ok::<(), petal_nn::NnError>(())
    /// ```
    pub fn of(model: &Model) -> Self {
        let nodes = model.nodes();
        let bytes = |shape: &[usize]| shape.iter().product::<usize>() * size_of::<f32>();
        let layers = nodes.iter().filter(|n| {
            n.layer
                .is_some_and(|layer| layer.kind() != LayerKind::Folded)
        });
        let layer_bytes = |n: &crate::ModelNode<'_>| {
            let inputs: usize = n.inputs.iter().map(|i| bytes(nodes[i.index()].shape)).sum();
            inputs + bytes(n.shape)
        };
        InferenceFootprint {
            weights: model.store().iter().map(|(_, p)| p.value.len() * 4).sum(),
            maps_per_image: layers.clone().map(|n| bytes(n.shape)).sum(),
            largest_layer_per_image: layers.map(layer_bytes).max().unwrap_or(0),
            head: vector_head(&nodes, model.output().index()),
        }
    }

    /// Images per chunk for a batch of `batch`: `batch` itself when chunks do not pay,
    /// else as many as fit their largest layer in 1 MiB (a core's L2), evened out
    /// over the thread pool.
    pub fn images_per_chunk(&self, batch: usize) -> usize {
        let chunk = (CHUNK_BYTES / self.largest_layer_per_image.max(1)).max(1);
        let weights_cheap =
            self.weights <= RESIDENT_WEIGHT_BYTES || self.weights <= chunk * self.maps_per_image;
        if !weights_cheap || chunk >= batch {
            return batch;
        }
        // Chunks in a multiple of the thread count, all about the same size: no thread
        // is left with a runt at the end.
        let threads = rayon::current_num_threads().max(1);
        let chunks = batch.div_ceil(chunk).next_multiple_of(threads);
        batch.div_ceil(chunks)
    }
}

/// [`InferenceFootprint::head`] of `nodes`, whose output is node `output`.
fn vector_head(nodes: &[ModelNode<'_>], output: usize) -> Option<NodeId> {
    let tail = |c: usize| &nodes[c..=output];
    (1..output)
        .find(|&c| {
            let kept = nodes[c]
                .layer
                .is_some_and(|layer| layer.kind() != LayerKind::Folded);
            let vectors = tail(c).iter().all(|n| n.shape.len() == 1);
            let closed = tail(c)[1..]
                .iter()
                .all(|n| n.inputs.iter().all(|i| i.index() >= c));
            kept && vectors && closed
        })
        .map(|c| nodes[c].id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn footprint(weights: usize, maps: usize, largest: usize) -> InferenceFootprint {
        InferenceFootprint {
            weights,
            maps_per_image: maps,
            largest_layer_per_image: largest,
            head: None,
        }
    }

    #[test]
    fn chunks_hold_their_largest_layer_and_split_evenly_over_the_threads() {
        let pool = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
        };
        // 1 MiB / 100 KiB = 10 images a chunk.
        let small = footprint(1 << 20, 400 << 10, 100 << 10);
        pool(2).install(|| {
            // 128 images: 13 chunks of 10 -> 14 chunks (even over 2 threads) of 10.
            assert_eq!(small.images_per_chunk(128), 10);
            // 30 images: 3 chunks -> 4, of 8 (the last of 6).
            assert_eq!(small.images_per_chunk(30), 8);
            // No more than the batch: one pass.
            assert_eq!(small.images_per_chunk(10), 10);
            assert_eq!(small.images_per_chunk(1), 1);
        });
        pool(1).install(|| assert_eq!(small.images_per_chunk(30), 10));
        // A layer larger than the budget: one image at a time.
        let wide = footprint(1 << 20, 30 << 20, 6 << 20);
        pool(2).install(|| assert_eq!(wide.images_per_chunk(16), 1));
    }

    #[test]
    fn the_head_starts_where_every_later_output_is_a_vector() {
        use crate::layers::{
            Activation, ActivationConfig, AddConfig, BatchNormConfig, Conv2dConfig, DenseConfig,
            FlattenConfig, GlobalAvgPoolConfig,
        };
        use crate::{Graph, Sequential};
        let head = |model: &Model| InferenceFootprint::of(model).head.map(NodeId::index);
        let conv_then_dense = || {
            Sequential::new(&[8, 8, 2], 0)
                .add(Conv2dConfig {
                    use_bias: false,
                    ..Conv2dConfig::new(4, 3)
                })?
                .add(BatchNormConfig::default())?
                .add(ActivationConfig::new(Activation::Relu))?
                .add(FlattenConfig::default())?
                .add(DenseConfig::new(5))?
                .add(DenseConfig::new(3))?
                .build()
        };
        // Folded or not, the flattening (node 4) starts the head.
        let model = conv_then_dense().unwrap();
        assert_eq!(head(&model), Some(4));
        assert_eq!(head(&model.fold_for_inference()), Some(4));
        // Nothing after the pooling: no head.
        let pooled = Sequential::new(&[8, 8, 2], 0)
            .add(Conv2dConfig::new(4, 3))
            .and_then(|m| m.add(GlobalAvgPoolConfig::default()))
            .and_then(|m| m.build())
            .unwrap();
        assert_eq!(head(&pooled), None);
        // A sum that reads the pooled vector from before the dense layers: the head
        // starts at the pooling, not after it.
        let mut g = Graph::new(0);
        let x = g.input(&[8, 8, 2]);
        let conv = g.call(&Conv2dConfig::new(4, 3), &[x]).unwrap();
        let vector = g.call(&GlobalAvgPoolConfig::default(), &[conv]).unwrap();
        let dense = g.call(&DenseConfig::new(4), &[vector]).unwrap();
        let sum = g.call(&AddConfig::default(), &[vector, dense]).unwrap();
        let model = g.build(sum).unwrap();
        assert_eq!(head(&model), Some(vector.index()));
        // A vector made before the last feature map (the input flattened) and summed
        // after it: every later run of vectors reads it from before, so no head.
        let mut g = Graph::new(0);
        let x = g.input(&[2, 2, 1]);
        let flat = g.call(&FlattenConfig::default(), &[x]).unwrap();
        let conv = g.call(&Conv2dConfig::new(1, 1), &[x]).unwrap();
        let flat_conv = g.call(&FlattenConfig::default(), &[conv]).unwrap();
        let sum = g.call(&AddConfig::default(), &[flat, flat_conv]).unwrap();
        let model = g.build(sum).unwrap();
        assert_eq!(head(&model), None);
    }

    #[test]
    fn large_weights_go_in_chunks_only_when_the_maps_outweigh_them() {
        // ResNet18's figures: 47 MB of weights, 14 MB of maps an image.
        let resnet18 = footprint(46_815_648, 13_754_272, 4_014_080);
        assert_eq!(resnet18.images_per_chunk(16), 16);
        // MobileNetV2's weights stay in the shared cache.
        let mobilenet_v2 = footprint(14_224_160, 27_592_224, 6_021_120);
        assert_eq!(mobilenet_v2.images_per_chunk(16), 1);
        // EfficientNet-Lite0's do not, but its maps outweigh them.
        let efficientnet = footprint(18_860_128, 27_805_472, 6_021_120);
        assert_eq!(efficientnet.images_per_chunk(16), 1);
    }
}
