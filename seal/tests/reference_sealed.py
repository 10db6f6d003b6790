import hashlib, struct, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import hashes
key = bytes(range(32)); salt = bytes(range(0x20, 0x40))
def seal(pt, seg=4096):
    n = max(1, -(-len(pt)//seg))
    h = b"TLSEALED" + bytes([1,1,0,0]) + struct.pack(">IQ", seg, len(pt)) + salt
    okm = HKDF(hashes.SHA256(), 39, salt, b"trusted-loader/sealed/v1" + h).derive(key)
    a = AESGCM(okm[:32]); out = h
    for i in range(n):
        nonce = okm[32:39] + struct.pack(">I", i) + bytes([1 if i == n-1 else 0])
        out += a.encrypt(nonce, pt[i*seg:(i+1)*seg], h)
    return out
pat = lambda n: bytes(i % 251 for i in range(n))
v = dict(l.split() for l in open('/tmp/seal_vecs.txt'))
assert seal(b"trusted-loader sealed vector").hex() == v["V1"], "V1"
assert hashlib.sha256(seal(pat(4096*2+5))).hexdigest() == v["V2"], "V2"
assert seal(b"").hex() == v["V3"], "V3"
L = 1 << 20
def mth(ls):
    if not ls: return hashlib.sha256(b"").digest()
    if len(ls) == 1: return ls[0]
    k = 1
    while k * 2 < len(ls): k *= 2
    return hashlib.sha256(b"\x01" + mth(ls[:k]) + mth(ls[k:])).digest()
def tree(d):
    ls = [hashlib.sha256(b"\x00" + d[i:i+L]).digest() for i in range(0, len(d), L)]
    return hashlib.sha256(b"\x02" + struct.pack(">Q", len(d)) + mth(ls)).hexdigest()
for name, d in [("empty", b""), ("abc", b"abc"), ("zero1m", bytes(L)), ("pat3m5", pat(3*L+5)), ("pat5m", pat(5*L))]:
    print(name, tree(d))
print("sealed vectors OK")
