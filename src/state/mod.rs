//! State that outlives a batch: window panes, keyed cumulative state, and
//! checkpoints. The arithmetic is pure ([`window::WindowSpec`]); the pane
//! store that runs DataFusion plans to merge panes lives in `exec::window`.

pub mod checkpoint;
pub mod checkpoint_io;
pub mod huge;
pub mod keyed;
pub mod window;
