//! Kubeconfigs for the lab's users, written by serializing kube's own [`Kubeconfig`] type (so a
//! path or name with a quote in it cannot produce a file kube reads differently), and the
//! `kube::Config` read back from one.

use std::path::{Path, PathBuf};

use kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
    NamedContext,
};

use super::dir::write_private;
use crate::error::{Error, Result};
use crate::pki::IssuedCert;

/// The cluster and context name in every lab kubeconfig.
pub const CONTEXT: &str = "fleetwatch-lab";

/// Where a user's client certificate, key and kubeconfig are written.
#[derive(Debug)]
pub(crate) struct UserFiles {
    pub(crate) kubeconfig: PathBuf,
    pub(crate) certificate: PathBuf,
    pub(crate) key: PathBuf,
}

impl UserFiles {
    /// Files named after `user` in `dir`, the kubeconfig at `kubeconfig`.
    pub(crate) fn new(dir: &Path, user: &str, kubeconfig: PathBuf) -> Self {
        let stem = file_stem(user);
        UserFiles {
            kubeconfig,
            certificate: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        }
    }

    /// Writes the certificate, the key (owner-readable only) and a kubeconfig that uses them.
    pub(crate) fn write(
        &self,
        server: &str,
        ca: &Path,
        user: &str,
        cert: &IssuedCert,
    ) -> Result<()> {
        write_private(&[
            (self.certificate.clone(), cert.cert_pem.clone()),
            (self.key.clone(), cert.key_pem.clone()),
        ])?;
        let text =
            serde_yaml_ng::to_string(&self.kubeconfig_for(server, ca, user)).map_err(|e| {
                Error::Kubeconfig {
                    path: self.kubeconfig.clone(),
                    reason: e.to_string(),
                }
            })?;
        write_private(&[(self.kubeconfig.clone(), text)])
    }

    fn kubeconfig_for(&self, server: &str, ca: &Path, user: &str) -> Kubeconfig {
        let path = |p: &Path| Some(p.display().to_string());
        let cluster = NamedCluster {
            name: CONTEXT.to_owned(),
            cluster: Some(Cluster {
                server: Some(server.to_owned()),
                certificate_authority: path(ca),
                ..Cluster::default()
            }),
            ..NamedCluster::default()
        };
        let auth = AuthInfo {
            client_certificate: path(&self.certificate),
            client_key: path(&self.key),
            ..AuthInfo::default()
        };
        single_context(cluster, user, auth)
    }
}

/// A kubeconfig of one context, [`CONTEXT`], naming `cluster` and `user` authenticated by `auth`.
pub(crate) fn single_context(cluster: NamedCluster, user: &str, auth: AuthInfo) -> Kubeconfig {
    Kubeconfig {
        api_version: Some("v1".to_owned()),
        kind: Some("Config".to_owned()),
        clusters: vec![NamedCluster {
            name: CONTEXT.to_owned(),
            ..cluster
        }],
        contexts: vec![NamedContext {
            name: CONTEXT.to_owned(),
            context: Some(Context {
                cluster: CONTEXT.to_owned(),
                user: Some(user.to_owned()),
                ..Context::default()
            }),
            ..NamedContext::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: user.to_owned(),
            auth_info: Some(auth),
            ..NamedAuthInfo::default()
        }],
        current_context: Some(CONTEXT.to_owned()),
        ..Kubeconfig::default()
    }
}

/// The `kube::Config` of a lab kubeconfig.
pub async fn config_from(kubeconfig: &Path) -> Result<kube::Config> {
    let fail = |reason: String| Error::Kubeconfig {
        path: kubeconfig.to_path_buf(),
        reason,
    };
    let raw = Kubeconfig::read_from(kubeconfig).map_err(|e| fail(e.to_string()))?;
    kube::Config::from_custom_kubeconfig(raw, &KubeConfigOptions::default())
        .await
        .map_err(|e| fail(e.to_string()))
}

/// A user name as a file name: only `[A-Za-z0-9-]`, the rest `_`.
pub(crate) fn file_stem(user: &str) -> String {
    user.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_written_kubeconfig_reads_back_with_awkward_names() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let pki = crate::pki::Pki::generate().expect("pki");
        let user = "user \"with\" quotes: and colons";
        let cert = pki.client_cert(user, &["group"]).expect("cert");
        let ca = tmp.path().join("ca \"dir\".crt");
        write_private(&[(ca.clone(), pki.files()[0].1.clone())]).expect("ca");
        let files = UserFiles::new(tmp.path(), user, tmp.path().join("kubeconfig"));
        files
            .write("https://127.0.0.1:6443", &ca, user, &cert)
            .expect("write");
        let raw = Kubeconfig::read_from(&files.kubeconfig).expect("read back");
        assert_eq!(raw.current_context.as_deref(), Some(CONTEXT));
        assert_eq!(raw.auth_infos[0].name, user);
        let cluster = raw.clusters[0].cluster.as_ref().expect("cluster");
        assert_eq!(
            cluster.certificate_authority.as_deref(),
            Some(ca.to_str().expect("utf-8"))
        );
        let config = config_from(&files.kubeconfig).await.expect("config");
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:6443/");
        assert!(
            files
                .key
                .to_string_lossy()
                .ends_with("user__with__quotes__and_colons.key")
        );
    }
}
