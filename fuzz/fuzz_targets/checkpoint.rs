//! Full training checkpoints: any bytes either give an error or decode into a checkpoint
//! that writes back, reads again and writes the same bytes a second time; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petal_train::checkpoint::{decode, read, write};

fuzz_target!(|data: &[u8]| {
    let path = petal_fuzz::scratch_file("run.ckpt", data);
    if let Ok(checkpoint) = decode(data, &path) {
        let (first, second) = (path.with_extension("1.ckpt"), path.with_extension("2.ckpt"));
        write(&first, &checkpoint).expect("a decoded checkpoint writes back");
        let reread = read(&first).expect("a written checkpoint reads back");
        write(&second, &reread).expect("and writes again");
        // Compared as bytes: NaN weights are legal and never equal themselves.
        let bytes = |p| std::fs::read(p).expect("just written");
        assert!(bytes(&first) == bytes(&second), "the round trip changed the checkpoint");
    }
});
