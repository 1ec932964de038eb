//! Holds proposed Zendesk writes until a human approves them

fn main() {}
