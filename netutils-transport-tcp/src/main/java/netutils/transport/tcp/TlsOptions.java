package netutils.transport.tcp;

import java.io.IOException;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import netutils.api.Connection;
import netutils.transport.tcp.internal.TcpConnection;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSession;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;

/**
 * TLS for a connection, with the JDK's own TLS ({@code javax.net.ssl}); set it with
 * {@link TcpOptions.Builder#tls(TlsOptions)} on the client, the server, or both for mutual TLS. A value; made with
 * {@link #builder()}.
 *
 * <pre>{@code
 * // The server: its certificate and key; with requireClientCertificate(), only clients whose certificate
 * // is signed by a CA of the trust store get in (mutual TLS).
 * KeyStore serverKeys = TlsOptions.loadKeyStore(Path.of("server.p12"), password);
 * TlsOptions serverTls = TlsOptions.builder()
 *         .keyStore(serverKeys, password)
 *         .trustStore(TlsOptions.loadKeyStore(Path.of("clients-ca.p12"), password))
 *         .requireClientCertificate()
 *         .build();
 * TcpServer server = TcpServer.bind(new InetSocketAddress(5000), TcpOptions.builder().tls(serverTls).build());
 *
 * // The client: which CAs it trusts (default: the JDK's), and its own certificate for mutual TLS.
 * TlsOptions clientTls = TlsOptions.builder()
 *         .trustStore(TlsOptions.loadKeyStore(Path.of("ca.p12"), password))
 *         .keyStore(TlsOptions.loadKeyStore(Path.of("client.p12"), password), password)
 *         .build();
 * Connection connection = TcpClient.connect("stage1.example", 5000, TcpOptions.builder().tls(clientTls).build());
 * }</pre>
 *
 * <table>
 * <caption>Defaults</caption>
 * <tr><th>option</th><th>default</th><th>meaning</th></tr>
 * <tr><td>key material</td><td>none</td><td>this side's certificate and private key: required on a server, and on
 *     a client of a server that requires client certificates</td></tr>
 * <tr><td>trust material</td><td>the JDK's trusted CAs ({@code cacerts})</td><td>which CAs sign the certificates
 *     this side accepts from its peer</td></tr>
 * <tr><td>protocols</td><td>TLS 1.3 only</td><td>{@link Builder#allowTls12()} adds TLS 1.2; nothing older is
 *     accepted</td></tr>
 * <tr><td>hostnameVerification</td><td>on</td><td>a client checks that the server's certificate names the host it
 *     connected to (or {@link Builder#serverName}), as HTTPS does</td></tr>
 * <tr><td>serverName</td><td>the host connected to</td><td>the name a client verifies and sends as SNI</td></tr>
 * <tr><td>requireClientCertificate</td><td>off</td><td>a server refuses clients without a trusted certificate</td></tr>
 * <tr><td>handshakeTimeout</td><td>10 s</td><td>how long the TLS handshake of a new connection may take</td></tr>
 * </table>
 *
 * <p>Failures say what went wrong: an untrusted, expired or misnamed certificate fails the connection with an
 * {@link javax.net.ssl.SSLHandshakeException} naming the peer and the reason, and a plaintext peer on one side and
 * TLS on the other fails at once (not after a timeout), saying which side does not speak TLS.
 *
 * @param context where keys, trust and sessions come from
 * @param protocols the TLS versions offered and accepted, e.g. {@code [TLSv1.3]}
 * @param hostnameVerification whether a client checks the server's certificate against the server's name
 * @param serverName the name a client verifies and sends as SNI; empty: the host it connects to
 * @param requireClientCertificate whether a server refuses clients without a trusted certificate
 * @param handshakeTimeout how long a handshake may take
 */
public record TlsOptions(SSLContext context, List<String> protocols, boolean hostnameVerification,
        Optional<String> serverName, boolean requireClientCertificate, Duration handshakeTimeout) {
    /** TLS 1.3, the default. */
    public static final String TLS_1_3 = "TLSv1.3";
    /** TLS 1.2, only when {@linkplain Builder#allowTls12() asked for}. */
    public static final String TLS_1_2 = "TLSv1.2";
    private static final Set<String> ALLOWED_PROTOCOLS = Set.of(TLS_1_3, TLS_1_2);

    /** Checks every setting; the builder is the friendlier way to make options. */
    public TlsOptions {
        Objects.requireNonNull(context, "context");
        protocols = List.copyOf(protocols);
        if (protocols.isEmpty()) {
            throw new IllegalArgumentException("protocols must name at least one TLS version");
        }
        for (String protocol : protocols) {
            if (!ALLOWED_PROTOCOLS.contains(protocol)) {
                throw new IllegalArgumentException("TLS version " + protocol + " is not allowed: use " + TLS_1_3
                        + " (the default) or " + TLS_1_2);
            }
        }
        Objects.requireNonNull(serverName, "serverName");
        serverName.ifPresent(name -> {
            if (name.isBlank()) {
                throw new IllegalArgumentException("serverName must not be blank");
            }
        });
        if (handshakeTimeout.isNegative() || handshakeTimeout.isZero()) {
            throw new IllegalArgumentException("handshakeTimeout must be positive, got " + handshakeTimeout);
        }
    }

    /**
     * A builder: TLS 1.3, hostname verification on, the JDK's trusted CAs, no key material yet.
     *
     * @return a new builder with those defaults
     */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * Loads a key store file (PKCS#12, or the JDK's JKS), of either key material (a certificate with its private
     * key) or trusted certificates; the type is detected from the file.
     *
     * @param file the key store file (PKCS#12 or JKS)
     * @param password the store's password
     * @return the loaded key store
     * @throws IOException if the file cannot be read, or the password is wrong
     * @throws GeneralSecurityException if the file is not a key store this JDK reads
     */
    public static KeyStore loadKeyStore(Path file, char[] password) throws IOException, GeneralSecurityException {
        try {
            return KeyStore.getInstance(file.toFile(), password);
        } catch (IOException e) {
            throw new IOException("cannot load key store " + file + ": " + e.getMessage(), e);
        }
    }

    /**
     * The TLS session of a connection of this transport: its protocol and cipher suite, and the peer's
     * certificates ({@code session.getPeerPrincipal()} is who the client is, under mutual TLS).
     *
     * @param connection a connection made by this transport
     * @return empty for a plaintext connection, or one of another transport
     */
    public static Optional<SSLSession> session(Connection connection) {
        return connection instanceof TcpConnection tcp ? tcp.tlsSession() : Optional.empty();
    }

    /** Builds {@link TlsOptions}; each setter checks its value. */
    public static final class Builder {
        private SSLContext context;
        private KeyManager[] keyManagers;
        private TrustManager[] trustManagers;
        private List<String> protocols = List.of(TLS_1_3);
        private boolean hostnameVerification = true;
        private Optional<String> serverName = Optional.empty();
        private boolean requireClientCertificate;
        private Duration handshakeTimeout = Duration.ofSeconds(10);

        private Builder() {
        }

        /**
         * This side's certificate chain and private key, from {@code store} (see {@link #loadKeyStore}). A server
         * needs one; a client needs one when the server requires client certificates.
         *
         * @param store the key store holding this side's private key and certificate chain
         * @param password the password of the keys in the store
         * @return this builder
         * @throws IllegalArgumentException if the keys cannot be read with {@code password}
         */
        public Builder keyStore(KeyStore store, char[] password) {
            Objects.requireNonNull(store, "store");
            try {
                KeyManagerFactory factory = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
                factory.init(store, password);
                this.keyManagers = factory.getKeyManagers();
            } catch (GeneralSecurityException e) {
                throw new IllegalArgumentException("cannot read the keys of the key store (wrong password?): "
                        + e.getMessage(), e);
            }
            return this;
        }

        /**
         * This side's key material as key managers, for keys that do not live in a {@link KeyStore}.
         *
         * @param managers the key managers to use
         * @return this builder
         */
        public Builder keyManagers(KeyManager... managers) {
            this.keyManagers = managers.clone();
            return this;
        }

        /**
         * The certificates this side trusts to sign its peer's certificate (for a client, the server's; for a
         * server that requires client certificates, the clients'). Default: the JDK's trusted CAs.
         *
         * @param store the certificates of the CAs to trust
         * @return this builder
         * @throws IllegalArgumentException if the store cannot be used as a trust store
         */
        public Builder trustStore(KeyStore store) {
            Objects.requireNonNull(store, "store");
            try {
                TrustManagerFactory factory = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
                factory.init(store);
                this.trustManagers = factory.getTrustManagers();
            } catch (GeneralSecurityException e) {
                throw new IllegalArgumentException("cannot use the key store as a trust store: " + e.getMessage(), e);
            }
            return this;
        }

        /**
         * This side's trust decisions as trust managers.
         *
         * @param managers the trust managers to use
         * @return this builder
         */
        public Builder trustManagers(TrustManager... managers) {
            this.trustManagers = managers.clone();
            return this;
        }

        /**
         * A ready {@link SSLContext} (keys, trust and session caches), instead of {@link #keyStore},
         * {@link #trustStore} and the manager setters.
         *
         * @param context the context to make engines from
         * @return this builder
         */
        public Builder sslContext(SSLContext context) {
            this.context = Objects.requireNonNull(context, "context");
            return this;
        }

        /**
         * Accepts and offers TLS 1.2 as well as TLS 1.3 (for peers that lack 1.3); older versions never.
         *
         * @return this builder
         */
        public Builder allowTls12() {
            this.protocols = List.of(TLS_1_3, TLS_1_2);
            return this;
        }

        /**
         * Whether a client checks that the server's certificate names the server (default: yes). Turning it off
         * lets anyone with a certificate from a trusted CA impersonate the server; do it only when the trust store
         * holds nothing but the certificates of the servers themselves.
         *
         * @param verify whether to check the server's name
         * @return this builder
         */
        public Builder hostnameVerification(boolean verify) {
            this.hostnameVerification = verify;
            return this;
        }

        /**
         * The name a client expects in the server's certificate and sends as SNI, when it differs from the host it
         * connects to (an IP address, a load balancer).
         *
         * @param name the host name the certificate must name
         * @return this builder
         */
        public Builder serverName(String name) {
            if (name.isBlank()) {
                throw new IllegalArgumentException("serverName must not be blank");
            }
            this.serverName = Optional.of(name);
            return this;
        }

        /**
         * A server refuses clients that present no certificate signed by a CA it trusts: mutual TLS.
         *
         * @return this builder
         */
        public Builder requireClientCertificate() {
            return requireClientCertificate(true);
        }

        /**
         * Whether a server refuses clients without a trusted certificate.
         *
         * @param require true for mutual TLS
         * @return this builder
         */
        public Builder requireClientCertificate(boolean require) {
            this.requireClientCertificate = require;
            return this;
        }

        /**
         * How long the handshake of a new connection may take (positive).
         *
         * @param timeout the longest handshake
         * @return this builder
         */
        public Builder handshakeTimeout(Duration timeout) {
            if (timeout.isNegative() || timeout.isZero()) {
                throw new IllegalArgumentException("handshakeTimeout must be positive, got " + timeout);
            }
            this.handshakeTimeout = timeout;
            return this;
        }

        /**
         * The options.
         *
         * @return the options
         * @throws IllegalStateException if both an {@link SSLContext} and key or trust material were given, or the
         *     JDK has no TLS
         */
        public TlsOptions build() {
            SSLContext built = context;
            if (built != null && (keyManagers != null || trustManagers != null)) {
                throw new IllegalStateException("give either sslContext(...) or key/trust material, not both: "
                        + "the material would be ignored");
            }
            if (built == null) {
                try {
                    built = SSLContext.getInstance("TLS");
                    built.init(keyManagers, trustManagers, null);
                } catch (GeneralSecurityException e) {
                    throw new IllegalStateException("cannot make a TLS context: " + e.getMessage(), e);
                }
            }
            return new TlsOptions(built, protocols, hostnameVerification, serverName, requireClientCertificate,
                    handshakeTimeout);
        }
    }
}
