//! The one integration-test binary: every module runs the real `carryover` binary in temp dirs
//! through [`common::TestEnv`].

mod common;
mod inspect;
mod manifests;
