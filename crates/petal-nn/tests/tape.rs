//! The tape's own behaviour: accumulation, no-grad mode, errors.

use std::rc::Rc;

use petal_nn::{no_grad, NnError, Tape, Var};
use petal_tensor::{Conv2dSpec, Tensor};

fn t(shape: &[usize], values: &[f32]) -> Tensor {
    Tensor::from_vec(shape, values.to_vec()).unwrap()
}

#[test]
fn gradients_of_a_value_used_twice_add_up() {
    let tape = Tape::new();
    let x = tape.leaf(t(&[2], &[1.0, -2.0]));
    let y = x.scale(3.0);
    // z = y * y + y: dz/dx = (2y + 1) * 3
    let z = y.mul(&y).unwrap().add(&y).unwrap().sum_all();
    let grads = z.backward().unwrap();
    assert_eq!(grads.get(&x).unwrap().to_vec(), vec![21.0, -33.0]);
}

#[test]
fn only_retained_op_outputs_keep_their_gradient() {
    let tape = Tape::new();
    let x = tape.leaf(t(&[2], &[1.0, -2.0]));
    let (kept, dropped) = (x.scale(3.0), x.scale(2.0));
    kept.retain_grad();
    let z = kept.add(&dropped).unwrap().sum_all();
    z.retain_grad(); // the root itself keeps its seed
    let grads = z.backward().unwrap();
    assert_eq!(grads.get(&kept).unwrap().to_vec(), vec![1.0, 1.0]);
    assert!(grads.get(&dropped).is_none());
    assert_eq!(grads.get(&z).unwrap().to_vec(), vec![1.0]);
    assert_eq!(grads.get(&x).unwrap().to_vec(), vec![5.0, 5.0]);
    // Retaining a constant is allowed and keeps nothing.
    let c = Var::constant(t(&[1], &[1.0]));
    c.retain_grad();
    assert!(c.backward().unwrap().get(&c).is_none());
}

#[test]
fn constants_and_no_grad_record_nothing() {
    let a = Var::constant(t(&[2], &[1.0, 2.0]));
    let b = a.relu().add(&a).unwrap();
    assert!(b.node().is_none(), "constants never build a tape");
    assert!(b.backward().unwrap().get(&a).is_none());

    let tape = Tape::new();
    let w = tape.leaf(t(&[2], &[1.0, 2.0]));
    let before = tape.len();
    let out = no_grad(|| w.mul(&a).unwrap().sigmoid());
    assert_eq!(tape.len(), before);
    assert!(out.node().is_none());
    // Recording resumes after the closure.
    assert!(w.relu().node().is_some());
}

#[test]
fn unrelated_leaves_get_no_gradient_and_constants_none() {
    let tape = Tape::new();
    let x = tape.leaf(t(&[1], &[2.0]));
    let unused = tape.leaf(t(&[1], &[5.0]));
    let c = Var::constant(t(&[1], &[4.0]));
    let grads = x.mul(&c).unwrap().backward().unwrap();
    assert_eq!(grads.get(&x).unwrap().to_vec(), vec![4.0]);
    assert!(grads.get(&unused).is_none());
    assert!(grads.get(&c).is_none());
}

#[test]
fn mixing_tapes_is_an_error() {
    let (t1, t2) = (Tape::new(), Tape::new());
    let a = t1.leaf(t(&[1], &[1.0]));
    let b = t2.leaf(t(&[1], &[1.0]));
    assert_eq!(a.add(&b).unwrap_err(), NnError::MixedTapes { op: "add" });
}

#[test]
fn shape_mismatches_name_the_op_and_both_shapes() {
    let tape = Tape::new();
    let x = tape.leaf(Tensor::zeros(&[2, 3]));
    let err = x
        .matmul(&Var::constant(Tensor::zeros(&[2, 3])))
        .unwrap_err()
        .to_string();
    assert!(err.contains("matmul") && err.contains("[2, 3]"), "{err}");
    let err = x
        .add(&Var::constant(Tensor::zeros(&[4])))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("add") && err.contains("[2, 3]") && err.contains("[4]"),
        "{err}"
    );
    let image = Var::constant(Tensor::zeros(&[1, 4, 4, 3]));
    let err = image
        .conv2d(&x, None, &Conv2dSpec::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("conv2d") && err.contains("[1, 4, 4, 3]") && err.contains("[2, 3]"),
        "{err}"
    );
    assert!(x.reshape(&[4]).is_err());
    assert!(x.sum(&[2], false).is_err());
    assert!(x.slice(&[0..3, 0..1]).is_err());
}

#[test]
fn a_custom_op_returning_a_wrong_shaped_gradient_is_an_error() {
    let tape = Tape::new();
    let x = tape.leaf(Tensor::zeros(&[3]));
    let y = Var::record_unary(Rc::new(Tensor::zeros(&[3])), &x, |_| Tensor::zeros(&[2]));
    match y.backward() {
        Err(NnError::GradientShape { expected, got, .. }) => {
            assert_eq!((expected, got), (vec![3], vec![2]))
        }
        other => panic!(
            "expected a gradient shape error, got {:?}",
            other.map(|_| ())
        ),
    }
}
