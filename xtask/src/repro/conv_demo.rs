//! The convolution slides: a 6x6 binary image, a diagonal and a vertical 3x3 filter,
//! their 4x4 feature maps with stride 1 and 2x2 maps with stride 2.

use petal_tensor::{conv::conv2d, Conv2dSpec, Tensor};

const IMAGE: [&str; 6] = ["100001", "010010", "001100", "100010", "010010", "001010"];
const FILTERS: [(&str, [f32; 9]); 2] = [
    (
        "filter 1 (diagonal)",
        [1., -1., -1., -1., 1., -1., -1., -1., 1.],
    ),
    (
        "filter 2 (vertical)",
        [-1., 1., -1., -1., 1., -1., -1., 1., -1.],
    ),
];

pub fn run() -> anyhow::Result<()> {
    let pixels = IMAGE
        .iter()
        .flat_map(|row| row.chars().map(|c| if c == '1' { 1.0 } else { 0.0 }))
        .collect();
    let image = Tensor::from_vec(&[1, 6, 6, 1], pixels)?;
    let weights = (0..9).flat_map(|i| FILTERS.map(|(_, f)| f[i])).collect();
    let filters = Tensor::from_vec(&[3, 3, 1, FILTERS.len()], weights)?;
    println!("image:\n{}\n", IMAGE.join("\n"));
    for stride in [1, 2] {
        let spec = Conv2dSpec {
            stride: [stride, stride],
            ..Conv2dSpec::default()
        };
        let maps = conv2d(&image, &filters, None, &spec)?;
        let side = maps.shape()[1];
        for (k, (name, _)) in FILTERS.iter().enumerate() {
            println!("stride {stride}, {name}: {side}x{side} feature map");
            for r in 0..side {
                let row: Vec<String> = (0..side)
                    .map(|c| format!("{:3}", maps.as_slice()[(r * side + c) * FILTERS.len() + k]))
                    .collect();
                println!("  {}", row.join(" "));
            }
        }
        println!();
    }
    Ok(())
}
