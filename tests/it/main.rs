//! The integration tests: one binary (linking the SDK and the shared support once), a module per
//! area. Each drives the real `credfile` binary against real local servers (moto, sudo, sshd,
//! ansible-playbook, an HTTP mirror); `support` holds what they share.

mod support;

mod action;
mod attack;
mod book;
mod crash;
mod engines;
mod engines_ansible;
mod expand;
mod faults;
mod fleet;
mod governance;
mod governance_policy;
mod harness;
mod identity;
mod install;
mod integration;
mod integration_failures;
mod lifecycle;
mod lifecycle_outputs;
mod manifests;
mod rails;
mod readme;
mod release;
mod requests;
mod run_cmd;
mod scripts;
mod sources;
mod sources_governance;
mod sources_secrets;
mod sudo;
mod sudo_paths;
mod sudo_reads;
mod sudo_support;
mod systemd_creds;
mod trust;
mod vault;
mod vault_auth;
mod vault_aws;
mod vault_dynamic;
mod vault_every;
mod vault_leaks;
mod vault_sudo;
