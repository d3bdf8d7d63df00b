//! `credfile policy`: the IAM (and trust) policy an environment needs, or its Vault policy and
//! JWT role, offline, from the manifest alone.

use crate::cli::{PolicyArgs, PolicyDocument};
use crate::error::Error;
use crate::{manifest, policy, sudo};

pub fn run(args: &PolicyArgs) -> Result<(), Error> {
    sudo::check_invocation(&args.manifest.manifest, &[])?;
    let manifest = manifest::load(&args.manifest.manifest, &sudo::Fence)?;
    if args.vault {
        print!(
            "{}",
            policy::vault::policy_hcl(&manifest, &args.env, &args.kv_v1)?
        );
        return Ok(());
    }
    if let Some(spec) = &args.vault_role {
        print!("{}", policy::vault::role_json(&manifest, &args.env, spec)?);
        return Ok(());
    }
    let generated = policy::generate(&manifest, &args.env, &args.trust)?;
    if generated.wildcard_account {
        tracing::warn!(
            env = %args.env,
            "no `account` or `identity.role_arn`: secret ARNs use `*` for the account; pin `account` to narrow them"
        );
    }
    let text = match args.only {
        None => generated.to_text(),
        Some(PolicyDocument::Identity) => policy::document_text(&generated.identity),
        Some(PolicyDocument::Trust) => match &generated.trust {
            Some(trust) => policy::document_text(trust),
            None => return Err(policy::PolicyError::NoTrust.into()),
        },
    };
    print!("{text}");
    Ok(())
}
