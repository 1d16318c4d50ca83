//! The one integration-test binary: every module runs the real `carryover` binary in temp dirs
//! through [`common::TestEnv`].

mod ansible;
mod common;
#[cfg(feature = "failpoints")]
mod crash;
mod docs;
mod golden;
mod hostile;
mod inspect;
mod manifests;
mod merge;
mod safety;
mod snapshot;
mod transplant;
mod verify;
