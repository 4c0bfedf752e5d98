//! An AWS KMS secp256k1 key, as every keyrite signer on AWS signs with it: the public key
//! fetched and checked once (`kms:GetPublicKey`), then `kms:Sign` over a 32-byte digest,
//! the DER answer turned into r‖s‖v by the core and checked to recover to the key's address.

use aws_sdk_kms::error::SdkError;
use aws_sdk_kms::operation::get_public_key::GetPublicKeyError;
use aws_sdk_kms::operation::sign::SignError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, MessageType, SigningAlgorithmSpec};
use keyrite_core::crypto::{self, Address, CryptoError, PreparedKey};
use keyrite_core::signing::{SigningMode, prehash};

/// The SDK's raw HTTP response, carried by its errors.
type Response = aws_sdk_kms::config::http::HttpResponse;

/// Why a key could not be used. The SDK's errors are kept whole, so that a caller can say
/// what they mean (expired credentials, a throttled call) in its own words.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    #[error("kms:GetPublicKey failed for key {key}: {}", describe(source))]
    GetPublicKey { key: String, source: SdkError<GetPublicKeyError, Response> },
    #[error("kms:Sign failed for key {key}: {}", describe(source))]
    Sign { key: String, source: SdkError<SignError, Response> },
    #[error("kms:GetPublicKey failed for key {key}: the key is {spec}, not ECC_SECG_P256K1 (secp256k1)")]
    NotSecp256k1 { key: String, spec: String },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// An SDK error in one line: the service's code and message, or the failure below the API.
pub fn describe<E>(err: &SdkError<E, Response>) -> String
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_kms::error::ProvideErrorMetadata;
    match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => aws_sdk_kms::error::DisplayErrorContext(err).to_string(),
    }
}

/// A KMS key with its public key and address, fetched once.
#[derive(Clone, Debug)]
pub struct KmsKey {
    client: aws_sdk_kms::Client,
    /// The key GetPublicKey resolved (its ARN), which every Sign names.
    key_id: String,
    key: PreparedKey,
    spki: Vec<u8>,
    address: Address,
}

impl KmsKey {
    /// Fetches the key's public key (`kms:GetPublicKey`) and checks it is secp256k1.
    pub async fn connect(client: aws_sdk_kms::Client, key_id: &str) -> Result<KmsKey, KmsError> {
        let out = client
            .get_public_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|source| KmsError::GetPublicKey { key: key_id.to_owned(), source })?;
        if let Some(spec) = out.key_spec().filter(|s| **s != KeySpec::EccSecgP256K1) {
            return Err(KmsError::NotSecp256k1 { key: key_id.to_owned(), spec: spec.as_str().to_owned() });
        }
        let spki = out.public_key().map(|b| b.as_ref().to_vec()).unwrap_or_default();
        let public_key = crypto::public_key_from_spki_der(&spki)?;
        // Sign with the key GetPublicKey resolved (its ARN), so that an alias pointed at another
        // key later cannot swap the key under a signer that checked this one.
        let key_id = out.key_id().unwrap_or(key_id).to_owned();
        Ok(KmsKey {
            client,
            key_id,
            address: crypto::evm_address(&public_key),
            key: PreparedKey::new(&public_key),
            spki,
        })
    }

    pub fn client(&self) -> &aws_sdk_kms::Client {
        &self.client
    }

    /// The key's id as GetPublicKey resolved it (an ARN).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key, with the table its signatures are checked with.
    pub fn prepared(&self) -> &PreparedKey {
        &self.key
    }

    /// The public key as KMS gave it (SubjectPublicKeyInfo DER).
    pub fn spki(&self) -> &[u8] {
        &self.spki
    }

    pub fn address(&self) -> &Address {
        &self.address
    }

    /// `kms:Sign` of `prehash` as a digest with `ECDSA_SHA_256`: KMS's DER signature, and the
    /// request id KMS gave (in answers and in errors).
    pub async fn sign_der_traced(&self, prehash: &[u8; 32]) -> (Result<Vec<u8>, KmsError>, Option<String>) {
        use aws_sdk_kms::operation::RequestId;
        let sent = self
            .client
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(prehash.to_vec()))
            .message_type(MessageType::Digest)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await;
        let id = sent.request_id().map(str::to_owned);
        let der = sent
            .map(|out| out.signature().map(|b| b.as_ref().to_vec()).unwrap_or_default())
            .map_err(|source| KmsError::Sign { key: self.key_id.clone(), source });
        (der, id)
    }

    /// Signs a request digest: r‖s‖v, low-s, v ∈ {27, 28}, verified to recover to the key's
    /// address. A KMS that signed anything but the prehash fails here, never downstream.
    pub async fn sign(&self, digest: &[u8; 32], mode: SigningMode) -> Result<[u8; 65], KmsError> {
        let prehash = prehash(mode, digest);
        let der = self.sign_der_traced(&prehash).await.0?;
        Ok(self.key.signature_rsv(&prehash, &der)?)
    }
}
