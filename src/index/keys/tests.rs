use super::*;

fn pk(k: &SigningKey) -> PublicKey {
    PublicKey::parse(&k.public_base64()).unwrap()
}

fn rotation(old: &SigningKey, new: &SigningKey, signers: &[&SigningKey]) -> SignedStatement {
    let st = Statement::Rotation {
        old: old.public_base64(),
        new: new.public_base64(),
        created: 1,
    };
    SignedStatement::sign(&st, signers).unwrap()
}

fn revocation(key: &SigningKey, by: &SigningKey) -> SignedStatement {
    let st = Statement::Revocation {
        key: key.public_base64(),
        by: by.public_base64(),
        created: 2,
    };
    SignedStatement::sign(&st, &[by]).unwrap()
}

fn log(statements: Vec<SignedStatement>) -> KeyLog {
    let log = KeyLog {
        format: KEYS_FORMAT,
        statements,
    };
    // Every log goes through its encoding, as a client reads it.
    KeyLog::decode(&log.encode().unwrap()).unwrap()
}

fn keys<const N: usize>() -> [SigningKey; N] {
    std::array::from_fn(|_| SigningKey::generate().unwrap())
}

#[test]
fn a_chain_of_rotations_is_followed_to_its_end() {
    let [a, b, c] = keys();
    let l = log(vec![
        rotation(&b, &c, &[&b, &c]),
        rotation(&a, &b, &[&a, &b]),
    ]);
    let f = follow(&pk(&a), &BTreeSet::new(), &l).unwrap();
    assert_eq!(f.key, pk(&c));
    assert_eq!(f.rotations, vec![(pk(&a), pk(&b)), (pk(&b), pk(&c))]);
    // A client already at the end stays there.
    let f = follow(&pk(&c), &BTreeSet::new(), &l).unwrap();
    assert_eq!(f.key, pk(&c));
    assert!(f.rotations.is_empty());
}

#[test]
fn a_rotation_needs_both_signatures() {
    let [a, b, evil] = keys();
    for signers in [vec![&a], vec![&b], vec![&evil, &b], vec![&a, &evil]] {
        let l = log(vec![rotation(&a, &b, &signers)]);
        let f = follow(&pk(&a), &BTreeSet::new(), &l).unwrap();
        assert_eq!(
            f.key,
            pk(&a),
            "moved with only {} signatures",
            signers.len()
        );
    }
}

#[test]
fn an_index_signature_is_not_a_statement_signature() {
    let [a, b] = keys();
    let text = serde_json::to_string(&Statement::Rotation {
        old: a.public_base64(),
        new: b.public_base64(),
        created: 1,
    })
    .unwrap();
    let signed = sign::Signed {
        format: 4,
        serial: 1,
        created: 1,
        repository: None,
    };
    let s = SignedStatement {
        signatures: vec![
            a.sign(text.as_bytes(), &signed).unwrap(),
            b.sign(text.as_bytes(), &signed).unwrap(),
        ],
        statement: text,
    };
    let f = follow(&pk(&a), &BTreeSet::new(), &log(vec![s])).unwrap();
    assert_eq!(f.key, pk(&a));
}

#[test]
fn forks_cycles_and_revoked_targets_are_refused() {
    let [a, b, c] = keys();
    let fork = log(vec![
        rotation(&a, &b, &[&a, &b]),
        rotation(&a, &c, &[&a, &c]),
    ]);
    let e = follow(&pk(&a), &BTreeSet::new(), &fork).unwrap_err();
    assert!(format!("{e}").contains("2 different keys"), "{e}");
    let cycle = log(vec![
        rotation(&a, &b, &[&a, &b]),
        rotation(&b, &a, &[&b, &a]),
    ]);
    let e = follow(&pk(&a), &BTreeSet::new(), &cycle).unwrap_err();
    assert!(format!("{e}").contains("back to"), "{e}");
    let known: BTreeSet<_> = [pk(&b)].into();
    let e = follow(&pk(&a), &known, &log(vec![rotation(&a, &b, &[&a, &b])])).unwrap_err();
    assert!(format!("{e}").contains("revoked"), "{e}");
}

#[test]
fn revocations_count_only_when_signed_by_a_trusted_key() {
    let [a, b, c] = keys();
    let l = log(vec![rotation(&a, &b, &[&a, &b]), revocation(&a, &b)]);
    let f = follow(&pk(&a), &BTreeSet::new(), &l).unwrap();
    assert_eq!(f.key, pk(&b));
    assert!(f.revoked.contains(&pk(&a)));
    // Signed by a key the client never trusted: ignored.
    let l = log(vec![revocation(&a, &c)]);
    let f = follow(&pk(&a), &BTreeSet::new(), &l).unwrap();
    assert!(f.revoked.is_empty());
    // A trusted key revoked: refused, whatever else the log says.
    let l = log(vec![revocation(&b, &a)]);
    let known: BTreeSet<_> = [pk(&b)].into();
    assert!(follow(&pk(&b), &known, &l).is_err());
}

#[test]
fn hostile_logs_are_refused_whole() {
    for bad in [
        r#"{"format":2,"statements":[]}"#,
        r#"{"format":1,"statements":[{"statement":"{}","signatures":[]}]}"#,
        r#"{"format":1,"statements":[{"statement":"{\"type\":\"rotation\",\"old\":\"x\",\"new\":\"y\",\"created\":1}","signatures":[]}]}"#,
        r#"{"format":1,"statements":[],"extra":1}"#,
    ] {
        assert!(KeyLog::decode(bad.as_bytes()).is_err(), "{bad}");
    }
}

#[test]
fn key_ids_read_as_minisign_shows_them() {
    let [a] = keys();
    let k = pk(&a);
    let id: KeyId = k.id().to_string().parse().unwrap();
    assert_eq!(id, k.id());
    assert_eq!(k.id().to_string().len(), 16);
    assert!("xyz".parse::<KeyId>().is_err());
}
