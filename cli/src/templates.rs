//! The CloudFormation templates of `templates/`, embedded in the binary.
//!
//! `sdp.yaml.hbs` is the root; every file under `partials/` is registered as a partial under its
//! stem (`partials/lake.yaml.hbs` → `{{> lake}}`). `tests/` checks that this list and the
//! directory agree, so a new file cannot be forgotten here.

/// A set of template sources: the root template and its partials, by name.
#[derive(Debug, Clone)]
pub struct TemplateSet {
    pub root: &'static str,
    pub partials: Vec<(&'static str, &'static str)>,
}

macro_rules! partials {
    ($($name:literal),* $(,)?) => {
        vec![$(($name, include_str!(concat!("../../templates/partials/", $name, ".yaml.hbs")))),*]
    };
}

/// The templates compiled into this binary.
pub fn embedded() -> TemplateSet {
    TemplateSet {
        root: include_str!("../../templates/sdp.yaml.hbs"),
        partials: partials![
            "parameters",
            "function",
            "role",
            "stage",
            "deployment",
            "security",
            "stream",
            "ingest",
            "processing",
            "capacity",
            "reports",
            "lake",
            "glue",
            "ml",
            "access",
            "observability",
            "outputs",
        ],
    }
}
