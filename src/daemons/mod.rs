//! The external daemons dist runs and supervises: opentracker and transmission-daemon.

pub(crate) mod supervise;
pub mod tracker;
pub mod transmission;
