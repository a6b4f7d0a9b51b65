//! The stage kinds this binary knows: one module per kind.

mod command;

use dapt_dag::Registry;

/// Every stage kind, registered.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register(command::CommandKind);
    registry
}
