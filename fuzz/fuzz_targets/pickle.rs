//! The pickle reader of PyTorch checkpoints: any bytes either parse (and their state
//! dict is looked up, or refused) or give an error; never a panic, whatever globals or
//! opcodes they hold. The same bytes are then read as a whole `.pth` file (the legacy
//! pickle-stream format when they do not start as a zip archive).
#![no_main]

use libfuzzer_sys::fuzz_target;
use petal_interop::pickle::Pickle;
use petal_interop::pth::{read_state_dict, ReadOptions};

fuzz_target!(|data: &[u8]| {
    if let Ok(pickle) = Pickle::parse(&mut &data[..]) {
        let _ = pickle.tensors(None);
        let _ = pickle.tensors(Some("state_dict"));
        let _ = pickle.strings();
    }
    let path = petal_fuzz::scratch_file("checkpoint.pth", data);
    if let Ok(state) = read_state_dict(&path, &ReadOptions::default()) {
        for (name, entry) in &state {
            let elements: usize = entry.tensor.shape().iter().product();
            assert_eq!(elements, entry.tensor.as_slice().len(), "{name}");
        }
    }
});
