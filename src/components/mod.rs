//! The viewer's UI components.

pub mod canvas;
pub mod findings;
pub mod metadata;
pub mod open_panel;
pub mod preview;
pub mod progress;
pub mod reports;
pub mod slice_view;
pub mod viewer;
