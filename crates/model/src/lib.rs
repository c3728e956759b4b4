//! The Nodulens models: burn modules and their configs, backend-agnostic, shared by the
//! native trainer and the browser. Empty until the models land (see the models issue);
//! the crate exists now so that the workspace layout does not change when they do.
