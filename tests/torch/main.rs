//! The `torch` feature (a target with `required-features = ["torch"]`): the
//! TorchScript runner end to end on the CPU and the linking of the built
//! binary against libtorch.

#[path = "../segmentation_support/mod.rs"]
mod segmentation_support;

mod linking;
mod segmentation;
