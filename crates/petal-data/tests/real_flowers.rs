//! The real Oxford 102 Flowers label and split files, when `../shared` is present.

use std::path::Path;

use petal_data::mat::read_mat;
use petal_data::Split;

#[test]
fn real_labels_and_official_split() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/flowers102");
    if !dir.join("setid.mat").is_file() {
        eprintln!("skipped: {} is absent", dir.display());
        return;
    }
    let labels = read_mat(dir.join("imagelabels.mat")).unwrap();
    let labels = labels.variable("labels").unwrap();
    assert_eq!(labels.dims, [1, 8189]);
    assert!(labels.values[..10].iter().all(|&v| v == 77.0));

    // Open without extracting the archive: a stand-in image root with an empty jpg/.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("jpg")).unwrap();
    let flowers = petal_data::flowers::Flowers102::open(
        root.path(),
        dir.join("imagelabels.mat"),
        dir.join("setid.mat"),
    )
    .unwrap();
    assert_eq!(flowers.len(), 8189);
    assert_eq!(&flowers.labels()[..10], [76; 10]);
    let sizes = [Split::Train, Split::Val, Split::Test].map(|s| flowers.split(s).len());
    assert_eq!(sizes, [1020, 1020, 6149]);
    let mut all: Vec<usize> = [Split::Train, Split::Val, Split::Test]
        .iter()
        .flat_map(|&s| flowers.split(s).to_vec())
        .collect();
    all.sort();
    assert_eq!(all, (0..8189).collect::<Vec<_>>());
    let counts = flowers.class_counts();
    assert!(
        counts.iter().all(|&c| (40..=258).contains(&c)),
        "{counts:?}"
    );
    for part in [Split::Train, Split::Val] {
        let mut per_class = vec![0; 102];
        for &i in flowers.split(part) {
            per_class[flowers.labels()[i]] += 1;
        }
        assert!(per_class.iter().all(|&c| c == 10));
    }
}
