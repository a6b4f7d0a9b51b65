//! `kind = "pretrain"`: trains a GPT from scratch on a mixture of domains (see
//! [`super::training`] for the parameters, outputs and resume behaviour).

use dapt_dag::{ParamError, RunReport, StageContext, StageKind};

use super::training::{self, Params, Start};

pub struct PretrainKind;

impl StageKind for PretrainKind {
    fn name(&self) -> &'static str {
        "pretrain"
    }

    fn accelerated(&self) -> bool {
        true
    }

    fn version(&self) -> u32 {
        1
    }

    fn check(&self, params: &toml::Table) -> Result<(), Vec<ParamError>> {
        Params::check(params, Start::Scratch).map(drop)
    }

    fn run(&self, ctx: &StageContext) -> anyhow::Result<RunReport> {
        training::run(ctx, Start::Scratch)
    }
}
