//! Parameters addressed by their path in the module tree ("blocks.0.mlp.expand.weight").
//! Gradients and optimizer moments are kept flat (rank 1) under these paths, so one map type
//! serves every parameter rank and the order of a `BTreeMap` fixes the order of reductions.

use std::collections::BTreeMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::Gradients;

/// Rank-1 tensors keyed by parameter path.
pub(crate) type ParamTensors = BTreeMap<String, Tensor<1>>;

/// The dotted path of the parameter being visited, maintained from enter/exit callbacks.
#[derive(Default)]
pub(crate) struct PathTracker(Vec<String>);

impl PathTracker {
    pub(crate) fn enter(&mut self, name: &str) {
        self.0.push(name.to_owned());
    }

    pub(crate) fn exit(&mut self) {
        self.0.pop();
    }

    pub(crate) fn current(&self) -> String {
        self.0.join(".")
    }
}

pub(crate) fn flatten<const D: usize>(tensor: Tensor<D>) -> Tensor<1> {
    let len = tensor.shape().num_elements();
    tensor.reshape([len])
}

/// Takes the gradient of every trainable parameter out of `grads`, flattened, by path.
pub(crate) fn take_gradients<M: Module>(model: &M, grads: &mut Gradients) -> ParamTensors {
    struct Collector<'a> {
        grads: &'a mut Gradients,
        path: PathTracker,
        out: ParamTensors,
    }
    impl ModuleVisitor for Collector<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.enter(name);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.exit();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = param.val().grad_remove(self.grads) {
                self.out.insert(self.path.current(), flatten(grad));
            }
        }
    }
    let mut collector = Collector {
        grads,
        path: PathTracker::default(),
        out: ParamTensors::new(),
    };
    model.visit(&mut collector);
    collector.out
}

/// Rewrites every float parameter through `update(path, current value) -> new value`, keeping
/// the parameter's id and its gradient requirement.
pub(crate) fn map_params<M: Module>(
    model: M,
    update: &mut dyn FnMut(&str, Tensor<1>, usize) -> Tensor<1>,
) -> M {
    struct Mapper<'a> {
        path: PathTracker,
        update: &'a mut dyn FnMut(&str, Tensor<1>, usize) -> Tensor<1>,
    }
    impl ModuleMapper for Mapper<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.enter(name);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.exit();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, value, mapper) = param.consume();
            let require_grad = value.is_require_grad();
            let shape = value.shape();
            let updated =
                (self.update)(&self.path.current(), flatten(value.inner()), D).reshape(shape);
            let updated = if require_grad {
                Tensor::from_inner(updated).require_grad()
            } else {
                updated
            };
            Param::from_mapped_value(id, updated, mapper)
        }
    }
    model.map(&mut Mapper {
        path: PathTracker::default(),
        update,
    })
}

/// Every float parameter's shape and values, by path (host copies).
pub(crate) fn param_values<M: Module>(model: &M) -> BTreeMap<String, crate::hf::Dense> {
    struct Reader {
        path: PathTracker,
        out: BTreeMap<String, crate::hf::Dense>,
    }
    impl ModuleVisitor for Reader {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.enter(name);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.exit();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            let shape = value.dims().to_vec();
            let values = value
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("f32 parameter data");
            self.out
                .insert(self.path.current(), crate::hf::Dense { shape, values });
        }
    }
    let mut reader = Reader {
        path: PathTracker::default(),
        out: BTreeMap::new(),
    };
    model.visit(&mut reader);
    reader.out
}

/// Every float parameter's shape, by path (no data copied).
pub(crate) fn param_shapes<M: Module>(model: &M) -> BTreeMap<String, Vec<usize>> {
    struct Reader {
        path: PathTracker,
        out: BTreeMap<String, Vec<usize>>,
    }
    impl ModuleVisitor for Reader {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.enter(name);
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.exit();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.out
                .insert(self.path.current(), param.val().dims().to_vec());
        }
    }
    let mut reader = Reader {
        path: PathTracker::default(),
        out: BTreeMap::new(),
    };
    model.visit(&mut reader);
    reader.out
}
