//! Certificates for a lab control plane: a serving CA and certificate for the API server on
//! loopback, a client CA whose certificates are the users (CN = user, O = groups, as the API server
//! reads them), and the service-account signing key. All ECDSA P-256, generated fresh per lab.

use std::net::{IpAddr, Ipv4Addr};

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::error::{Error, Result};

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for IssuedCert {
    // Never print private keys.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCert").finish_non_exhaustive()
    }
}

/// A certificate authority: its certificate and its signing key.
struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

impl Authority {
    fn generate(name: &str) -> Result<Self> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert_pem = params.self_signed(&key)?.pem();
        let key_pem = key.serialize_pem();
        Ok(Authority {
            issuer: Issuer::new(params, key),
            cert_pem,
            key_pem,
        })
    }

    fn load(cert_pem: String, key_pem: String) -> Result<Self> {
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, KeyPair::from_pem(&key_pem)?)?;
        Ok(Authority {
            issuer,
            cert_pem,
            key_pem,
        })
    }

    fn issue(&self, mut params: CertificateParams) -> Result<IssuedCert> {
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// The two certificate authorities of one lab. The client CA's key is kept (owner-only) in the
/// lab directory so that later commands (`lab load`) can issue users for a running lab.
pub struct Pki {
    serving: Authority,
    client: Authority,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

impl Pki {
    pub fn generate() -> Result<Self> {
        Ok(Pki {
            serving: Authority::generate("fleetwatch-lab-serving-ca")?,
            client: Authority::generate("fleetwatch-lab-client-ca")?,
        })
    }

    /// The PEM files [`Pki::load`] reads back: (file name, contents).
    pub fn files(&self) -> [(&'static str, String); 4] {
        [
            ("serving-ca.crt", self.serving.cert_pem.clone()),
            ("serving-ca.key", self.serving.key_pem.clone()),
            ("client-ca.crt", self.client.cert_pem.clone()),
            ("client-ca.key", self.client.key_pem.clone()),
        ]
    }

    /// Loads the authorities written from [`Pki::files`] in `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(Error::io("reading a lab certificate", path))
        };
        Ok(Pki {
            serving: Authority::load(read("serving-ca.crt")?, read("serving-ca.key")?)?,
            client: Authority::load(read("client-ca.crt")?, read("client-ca.key")?)?,
        })
    }

    /// A serving certificate for `name` (kube-apiserver, kube-scheduler) from the serving CA,
    /// valid for 127.0.0.1 and localhost, so lab clients can verify it.
    pub fn serving_cert(&self, name: &str) -> Result<IssuedCert> {
        self.serving.issue(loopback_server_params(name)?)
    }

    /// A client certificate for `user` in `groups`: the API server authenticates it as that user.
    pub fn client_cert(&self, user: &str, groups: &[&str]) -> Result<IssuedCert> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, user);
        for group in groups {
            params
                .distinguished_name
                .push(DnType::OrganizationName, *group);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.client.issue(params)
    }
}

/// Parameters of a serving certificate for 127.0.0.1 and localhost.
fn loopback_server_params(name: &str) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params)
}

/// A CA of its own (PEM) and a certificate it signed for a TLS server `name` on loopback: for
/// a test's server that the API server calls, such as the audit webhook's receiver, whose CA the
/// lab must be given before its own PKI exists.
pub fn loopback_server(name: &str) -> Result<(String, IssuedCert)> {
    let ca = Authority::generate(&format!("{name}-ca"))?;
    let cert = ca.issue(loopback_server_params(name)?)?;
    Ok((ca.cert_pem, cert))
}

/// The key pair that signs service-account tokens: (private PEM, public PEM).
pub fn service_account_keys() -> Result<(String, String)> {
    let key = KeyPair::generate()?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}
