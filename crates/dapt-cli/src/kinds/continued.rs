//! `kind = "continue"`: continued pre-training of another training stage's model, with a
//! fresh optimizer and the learning rate re-warmed and re-decayed (Ibrahim et al. 2024),
//! usually on a domain mixture that replays general data (see [`super::training`]).

use dapt_dag::{ParamError, RunReport, StageContext, StageKind};

use super::training::{self, Params, Start};

pub struct ContinueKind;

impl StageKind for ContinueKind {
    fn name(&self) -> &'static str {
        "continue"
    }

    fn accelerated(&self) -> bool {
        true
    }

    fn version(&self) -> u32 {
        1
    }

    fn check(&self, params: &toml::Table) -> Result<(), Vec<ParamError>> {
        Params::check(params, Start::Continue).map(drop)
    }

    fn run(&self, ctx: &StageContext) -> anyhow::Result<RunReport> {
        training::run(ctx, Start::Continue)
    }
}
