//! The SQL front end: our dialect (statements and the WINDOW clause) and the
//! planner that compiles a continuous query once, at CREATE.

pub mod dialect;
pub mod planner;
