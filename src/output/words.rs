//! The closed sets of words the output uses (statuses, kinds, layouts, commands), each spelled
//! once for JSON and for text, converted from the stages' own enums by exhaustive matches: a new
//! variant upstream does not compile until the published vocabulary says how to name it.

use serde::Serialize;

use crate::format::SCHEMA_VERSION;
use crate::hooks::HookStatus;
use crate::materialize::Status;

/// A closed set of words in the output: each word written once, for JSON and for text.
macro_rules! vocabulary {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
        #[cfg_attr(test, derive(schemars::JsonSchema))]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            #[allow(dead_code, reason = "some words are only in JSON")]
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }
    };
}

vocabulary! {
    /// How the root's files are published (docs/src/layouts.md).
    Layout { Generation = "generation", Files = "files" }
}

vocabulary! {
    /// What happened to a file; for plan, what apply would do.
    FileStatus { Created = "created", Updated = "updated", Unchanged = "unchanged", Removed = "removed" }
}

vocabulary! {
    /// How a change hook went; `planned` for plan.
    HookState {
        Planned = "planned", Ok = "ok", Failed = "failed", Signaled = "signaled",
        TimedOut = "timed_out", NotStarted = "not_started",
    }
}

vocabulary! {
    /// What differs between the host and the manifest.
    DriftKind {
        Missing = "missing", Extra = "extra", Content = "content", Mode = "mode",
        Owner = "owner", Group = "group", Type = "type",
    }
}

vocabulary! {
    /// The command whose report this is.
    RunCommand { Apply = "apply", Plan = "plan" }
}

vocabulary! {
    /// `verify`.
    VerifyCommand { Verify = "verify" }
}

vocabulary! {
    /// `validate`.
    ValidateCommand { Validate = "validate" }
}

vocabulary! {
    /// `apply --every`.
    EveryCommand { Apply = "apply" }
}

impl From<crate::manifest::Layout> for Layout {
    fn from(l: crate::manifest::Layout) -> Layout {
        match l {
            crate::manifest::Layout::Generation => Layout::Generation,
            crate::manifest::Layout::Files => Layout::Files,
        }
    }
}

impl From<Status> for FileStatus {
    fn from(s: Status) -> FileStatus {
        match s {
            Status::Created => FileStatus::Created,
            Status::Updated => FileStatus::Updated,
            Status::Unchanged => FileStatus::Unchanged,
            Status::Removed => FileStatus::Removed,
        }
    }
}

impl From<&HookStatus> for HookState {
    fn from(s: &HookStatus) -> HookState {
        match s {
            HookStatus::Planned => HookState::Planned,
            HookStatus::Ok => HookState::Ok,
            HookStatus::Failed(_) => HookState::Failed,
            HookStatus::Signaled(_) => HookState::Signaled,
            HookStatus::TimedOut => HookState::TimedOut,
            HookStatus::NotStarted(_) => HookState::NotStarted,
        }
    }
}

impl From<crate::materialize::DriftKind> for DriftKind {
    fn from(k: crate::materialize::DriftKind) -> DriftKind {
        use crate::materialize::DriftKind as K;
        match k {
            K::Missing => DriftKind::Missing,
            K::Extra => DriftKind::Extra,
            K::Content => DriftKind::Content,
            K::Mode => DriftKind::Mode,
            K::Owner => DriftKind::Owner,
            K::Group => DriftKind::Group,
            K::Type => DriftKind::Type,
        }
    }
}

/// `schema_version`: [`SCHEMA_VERSION`], the version of the report's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaVersion;

impl Serialize for SchemaVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(SCHEMA_VERSION)
    }
}
