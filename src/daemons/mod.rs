//! The external daemons dist runs and supervises: opentracker and transmission-daemon.

pub mod tracker;
pub mod transmission;
