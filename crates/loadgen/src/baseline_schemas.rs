//! A baseline's own schemas in the registry for the length of a run.
//!
//! A baseline (an earlier commit's binaries) registers its older schemas when its services
//! start. The registry already holds this commit's, and each subject's BACKWARD rule refuses
//! an older schema after a newer one (a reader without an enum symbol added since cannot read
//! it), so the baseline's relay would publish nothing and its figures would be void. Registered
//! here first, each under FORWARD for that one registration (the newer schema reads what the
//! older one wrote: the way they evolved), the baseline's services find them in place (the
//! registry answers an existing schema with its id). Once the run's records are deleted, the
//! versions added here are deleted too, and the registry is as it was.

use std::path::Path;

use anyhow::Context;
use events::Topic;
use events::registry::RegistryAdmin;
use service_kit::testing;

pub struct BaselineSchemas {
    admin: RegistryAdmin,
    /// (subject, version) registered here, to delete afterwards.
    added: Vec<(String, u32)>,
}

impl BaselineSchemas {
    /// Register every `<topic>.avsc` of `dir` under its topic's subject.
    pub async fn register(dir: &Path) -> anyhow::Result<Self> {
        let mut files = std::fs::read_dir(dir)
            .with_context(|| format!("reading the baseline's schemas in {}", dir.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<Vec<_>, _>>()?;
        files.retain(|p| p.extension().is_some_and(|e| e == "avsc"));
        files.sort();
        anyhow::ensure!(!files.is_empty(), "no .avsc file in {}", dir.display());
        let mut this = Self {
            admin: RegistryAdmin::connect(&testing::registry_access())?,
            added: Vec::new(),
        };
        for file in files {
            let topic: Topic = file
                .file_stem()
                .and_then(|s| s.to_str())
                .context("a schema file name that is not UTF-8")?
                .parse()
                .with_context(|| format!("{} names no topic", file.display()))?;
            let schema = std::fs::read_to_string(&file)?;
            if let Err(e) = this.add(&topic.subject(), &schema).await {
                this.remove().await?;
                return Err(e.context(format!("registering {}", file.display())));
            }
        }
        Ok(this)
    }

    async fn add(&mut self, subject: &str, schema: &str) -> anyhow::Result<()> {
        let before = match self.admin.versions(subject).await {
            Ok(versions) => versions,
            // A subject the registry does not hold yet: no versions.
            Err(e) if e.status() == Some(404) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        match self.admin.register(subject, schema).await {
            Ok(_) => {}
            Err(e) if e.status() == Some(409) => {
                let level = self.admin.compatibility(Some(subject)).await?;
                self.admin.set_compatibility(subject, "FORWARD").await?;
                let registered = self.admin.register(subject, schema).await;
                self.admin.set_compatibility(subject, &level).await?;
                registered?;
            }
            Err(e) => return Err(e.into()),
        }
        let after = self.admin.versions(subject).await?;
        self.added.extend(
            after
                .into_iter()
                .filter(|v| !before.contains(v))
                .map(|v| (subject.to_owned(), v)),
        );
        Ok(())
    }

    /// How many versions were added (what [`BaselineSchemas::remove`] deletes).
    pub fn added(&self) -> usize {
        self.added.len()
    }

    /// Delete the versions added. Only once the records written with them are deleted: a
    /// consumer could no longer decode those.
    pub async fn remove(self) -> anyhow::Result<()> {
        for (subject, version) in &self.added {
            self.admin
                .delete_version(subject, *version)
                .await
                .with_context(|| format!("deleting {subject} version {version}"))?;
        }
        Ok(())
    }
}
