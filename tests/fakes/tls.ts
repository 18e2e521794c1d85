/**
 * Throwaway certificate authorities for tests that speak TLS (openid-and-discovery.md §7).
 *
 * `createTestCa()` runs `openssl` once per test process and returns a CA plus a default leaf
 * certificate valid for the names the fakes use (`localhost`, `127.0.0.1`, `::1`, `hs.test`,
 * `*.hs.test`, …). Trust the CA by passing `ca.caCertPem` in `caCerts`; serve the leaf with
 * `Deno.serve({ cert: leaf.certPem, key: leaf.keyPem })`. Further leaves with other names come
 * from `ca.issue(...)`; a second, untrusted CA comes from `createTestCa(otherDir)`.
 *
 * Keys are ECDSA P-256 (fast to generate). Files live in a temporary directory that is left
 * for the OS to clean up (tests may run in parallel processes, each with its own directory).
 *
 * @module
 */

/** A leaf certificate and its key, as PEM text and as files. */
export interface LeafCert {
  certPem: string;
  keyPem: string;
  certPath: string;
  keyPath: string;
  /** DNS names in the subjectAltName extension. */
  dnsNames: readonly string[];
  /** IP addresses in the subjectAltName extension. */
  ipAddresses: readonly string[];
}

/** Names a leaf certificate is issued for. */
export interface LeafNames {
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
}

/** A test CA that can issue leaf certificates. */
export interface TestCa {
  dir: string;
  caCertPem: string;
  caCertPath: string;
  /** Leaf for {@linkcode DEFAULT_DNS_NAMES} and {@linkcode DEFAULT_IP_ADDRESSES}. */
  leaf: LeafCert;
  /** Issues (once per distinct name set) a leaf certificate for the given names. */
  issue(names: LeafNames): Promise<LeafCert>;
}

/** DNS names of the default leaf certificate. */
export const DEFAULT_DNS_NAMES: readonly string[] = [
  "localhost",
  "hs.test",
  "*.hs.test",
  "matrix.test",
  "*.matrix.test",
  "delegated.test",
  "*.delegated.test",
  "other.test",
];

/** IP addresses of the default leaf certificate. */
export const DEFAULT_IP_ADDRESSES: readonly string[] = ["127.0.0.1", "::1"];

const cache = new Map<string, Promise<TestCa>>();
let defaultDir: Promise<string> | undefined;

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(
      `openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr).slice(0, 500)}`,
    );
  }
}

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

async function makeCa(dir: string): Promise<TestCa> {
  await Deno.mkdir(dir, { recursive: true });
  const caCertPath = `${dir}/ca.pem`;
  await openssl([
    "req",
    "-x509",
    ...EC_KEY,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "30",
    "-subj",
    "/CN=lk-jwt-service test CA",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ], dir);
  const caCertPem = await Deno.readTextFile(caCertPath);
  const leaves = new Map<string, Promise<LeafCert>>();
  let serial = 0;

  const issue = (names: LeafNames): Promise<LeafCert> => {
    const dnsNames = [...(names.dnsNames ?? [])];
    const ipAddresses = [...(names.ipAddresses ?? [])];
    const key = JSON.stringify([dnsNames, ipAddresses]);
    let leaf = leaves.get(key);
    if (!leaf) {
      leaf = issueLeaf(dir, ++serial, dnsNames, ipAddresses);
      leaves.set(key, leaf);
    }
    return leaf;
  };
  const leaf = await issue({ dnsNames: DEFAULT_DNS_NAMES, ipAddresses: DEFAULT_IP_ADDRESSES });
  return { dir, caCertPem, caCertPath, leaf, issue };
}

async function issueLeaf(
  dir: string,
  serial: number,
  dnsNames: string[],
  ipAddresses: string[],
): Promise<LeafCert> {
  const base = `leaf${serial}`;
  const sans = [...dnsNames.map((n) => `DNS:${n}`), ...ipAddresses.map((ip) => `IP:${ip}`)];
  const ext = [
    "basicConstraints=CA:FALSE",
    "keyUsage=critical,digitalSignature",
    "extendedKeyUsage=serverAuth",
    ...(sans.length > 0 ? [`subjectAltName=${sans.join(",")}`] : []),
  ].join("\n");
  await Deno.writeTextFile(`${dir}/${base}.ext`, ext + "\n");
  const cn = dnsNames[0] ?? ipAddresses[0] ?? "leaf";
  await openssl(
    ["req", ...EC_KEY, "-keyout", `${base}.key`, "-out", `${base}.csr`, "-subj", `/CN=${cn}`],
    dir,
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    `${base}.csr`,
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-set_serial",
    String(1000 + serial),
    "-days",
    "30",
    "-out",
    `${base}.pem`,
    "-extfile",
    `${base}.ext`,
  ], dir);
  const certPath = `${dir}/${base}.pem`;
  const keyPath = `${dir}/${base}.key`;
  return {
    certPem: await Deno.readTextFile(certPath),
    keyPem: await Deno.readTextFile(keyPath),
    certPath,
    keyPath,
    dnsNames,
    ipAddresses,
  };
}

/**
 * Returns the test CA for `dir` (default: one temporary directory per process), creating it on
 * first use. Calls with the same `dir` share one CA.
 */
export async function createTestCa(dir?: string): Promise<TestCa> {
  const target = dir ?? await (defaultDir ??= Deno.makeTempDir({ prefix: "lkjwt-ca-" }));
  let ca = cache.get(target);
  if (!ca) {
    ca = makeCa(target);
    cache.set(target, ca);
    ca.catch(() => cache.delete(target));
  }
  return ca;
}
