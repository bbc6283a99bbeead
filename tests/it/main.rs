//! jitbot's integration tests: one test binary (fewer link steps), one module per area.

mod config_files;
