package io.tapemu;

import java.util.Objects;

/**
 * Immutable configuration of a {@link TapEmulator}; build one with {@link #builder()}.
 *
 * <p>The builder only checks for obvious mistakes (nulls, ranges); the full validation of
 * MAC strings, addresses and link URLs happens in {@link TapEmulator#TapEmulator(TapConfig,
 * TapListener)}, which throws {@link IllegalArgumentException} for anything it rejects.
 */
public final class TapConfig {
    /** Default link MTU: the largest IP packet, 1500 as on Ethernet. */
    public static final int DEFAULT_MTU = 1500;

    final String mac;
    final String staticAddress;
    final int staticPrefixLength;
    final String staticGateway;
    final String hostname;
    final int mtu;
    final boolean ipv6;
    final String linkUrl;
    final int linkTimeoutMillis;
    final boolean protectSockets;
    final boolean batchFrames;
    final String rememberedLease;
    final boolean socketPair;

    /** Default of {@link Builder#linkTimeoutMillis(int)}: 10 s. */
    public static final int DEFAULT_LINK_TIMEOUT_MILLIS = 10_000;

    private TapConfig(Builder b) {
        this.mac = b.mac;
        this.staticAddress = b.staticAddress;
        this.staticPrefixLength = b.staticPrefixLength;
        this.staticGateway = b.staticGateway;
        this.hostname = b.hostname;
        this.mtu = b.mtu;
        this.ipv6 = b.ipv6;
        this.linkUrl = b.linkUrl;
        this.linkTimeoutMillis = b.linkTimeoutMillis;
        this.protectSockets = b.protectSockets;
        this.batchFrames = b.batchFrames;
        this.rememberedLease = b.rememberedLease;
        this.socketPair = b.socketPair;
    }

    /** @return how long the link may take to open (name lookup and connect), in milliseconds. */
    public int linkTimeoutMillis() {
        return linkTimeoutMillis;
    }

    /** @return whether a built-in link's sockets go through {@link TapListener#protect(int)}. */
    public boolean protectSockets() {
        return protectSockets;
    }

    /** @return whether frames reach the listener in batches ({@link TapListener#onFrames}). */
    public boolean batchFrames() {
        return batchFrames;
    }

    /** @return whether the link opens sockets that must be protected from the VPN. */
    boolean needsProtect() {
        return protectSockets && linkUrl != null && !linkUrl.startsWith("tap:") && !linkUrl.startsWith("fd:");
    }

    /**
     * @return the lease of an earlier run to ask for again, as {@link TapEmulator#storedLease()}
     *     gave it, or {@code null}
     */
    public @Nullable String rememberedLease() {
        return rememberedLease;
    }

    /** @return a builder with DHCP, a random MAC, MTU 1500 and callback mode. */
    public static @NonNull Builder builder() {
        return new Builder();
    }

    /**
     * @return the MAC as given, or {@code null} for a random locally administered one (read
     *     it back with {@link TapEmulator#mac()})
     */
    public @Nullable String mac() {
        return mac;
    }

    /** @return true when the address comes from DHCP. */
    public boolean isDhcp() {
        return staticAddress == null;
    }

    /** @return the static address, or {@code null} with DHCP. */
    public @Nullable String staticAddress() {
        return staticAddress;
    }

    /** @return the static prefix length (meaningful only with a static address). */
    public int staticPrefixLength() {
        return staticPrefixLength;
    }

    /** @return the static default gateway, or {@code null}. */
    public @Nullable String staticGateway() {
        return staticGateway;
    }

    /** @return the hostname sent to the DHCP server, or {@code null}. */
    public @Nullable String hostname() {
        return hostname;
    }

    /** @return the link MTU. */
    public int mtu() {
        return mtu;
    }

    /** @return true when IPv6 (link-local, router discovery, SLAAC) runs. */
    public boolean ipv6() {
        return ipv6;
    }

    /** @return the link URL, or {@code null} in callback mode. */
    public @Nullable String linkUrl() {
        return linkUrl;
    }

    /** @return true when frames travel through {@link TapListener#onFrame} and {@link TapEmulator#sendFrame}. */
    public boolean isCallbackMode() {
        return linkUrl == null && !socketPair;
    }

    /** @return true when frames travel through a socket pair ({@link TapEmulator#peerFd()}). */
    public boolean isSocketPair() {
        return socketPair;
    }

    @Override
    public @NonNull String toString() {
        return "TapConfig{mac=" + mac + ", " + (isDhcp() ? "dhcp" : staticAddress + "/" + staticPrefixLength
                + " gw " + staticGateway) + ", hostname=" + hostname + ", mtu=" + mtu + ", ipv6=" + ipv6
                + ", link=" + (linkUrl != null ? linkUrl : socketPair ? "socketpair" : "callback") + ", linkTimeoutMillis=" + linkTimeoutMillis
                + ", protectSockets=" + protectSockets + ", batchFrames=" + batchFrames
                + ", rememberedLease=" + (rememberedLease != null) + "}";
    }

    /** Builder of {@link TapConfig}; every setter returns the builder. Not thread-safe. */
    public static final class Builder {
        private String mac;
        private String staticAddress;
        private int staticPrefixLength;
        private String staticGateway;
        private String hostname;
        private int mtu = DEFAULT_MTU;
        private boolean ipv6 = true;
        private String linkUrl;
        private int linkTimeoutMillis = DEFAULT_LINK_TIMEOUT_MILLIS;
        private boolean protectSockets = true;
        private boolean batchFrames = true;
        private String rememberedLease;
        private boolean socketPair;

        private Builder() {}

        /**
         * Asks for the address of an earlier run again, so that an app restarted (or an
         * emulator created again) keeps its address and its connections: the emulator starts
         * in DHCP INIT-REBOOT (a DHCPREQUEST for that address, no DHCPDISCOVER) while the lease
         * has not expired, and falls back to discovery if the server does not answer within
         * 10 s; a NAK or an expired lease starts discovery at once. Nothing of it is used
         * before a server acknowledges it. Give the same {@link #mac(String) MAC} as before:
         * the server knows the lease by it. Needs DHCP.
         *
         * <p>Store {@link TapEmulator#storedLease()} (in {@link TapListener#onLeaseAcquired}
         * and {@link TapListener#onLeaseRenewed}, say) and {@link TapEmulator#mac()}, stop with
         * {@link TapEmulator#close(boolean) close(false)} so that the server keeps the lease,
         * and pass both here next time. The JSON is the lease file of the CLI ({@code
         * tapemu --lease-file}), with wall-clock times: {@code {"address":"192.0.2.123",
         * "prefix":24,...,"acquired_unix":1700000000}}.
         *
         * @param storedLease the JSON, or {@code null} for none; a malformed one makes
         *     {@link TapEmulator#TapEmulator(TapConfig, TapListener)} throw
         *     {@link IllegalArgumentException}
         * @return this builder
         */
        public @NonNull Builder rememberedLease(@Nullable String storedLease) {
            this.rememberedLease = storedLease;
            return this;
        }

        /**
         * Sets how long a built-in link may take to open: the name lookup and the first TCP
         * connect. Past it the emulator stops and {@link TapListener#onStopped(String)} says why.
         *
         * @param millis the timeout, at least 1 (default {@value #DEFAULT_LINK_TIMEOUT_MILLIS})
         * @return this builder
         * @throws IllegalArgumentException if not positive
         */
        public @NonNull Builder linkTimeoutMillis(int millis) {
            if (millis <= 0) {
                throw new IllegalArgumentException("link timeout " + millis + " ms is not positive");
            }
            this.linkTimeoutMillis = millis;
            return this;
        }

        /**
         * Whether a built-in link's sockets are handed to {@link TapListener#protect(int)}
         * (the default, and required on Android). Turn it off only on a desktop JVM, where no
         * VPN captures the link's own traffic; then the listener need not implement protect.
         *
         * @param protect false to open sockets without protect
         * @return this builder
         */
        public @NonNull Builder protectSockets(boolean protect) {
            this.protectSockets = protect;
            return this;
        }

        /**
         * Callback mode: whether frames reach the listener many per call through
         * {@link TapListener#onFrames} (the default, whose default hands them to
         * {@link TapListener#onFrame} one by one), or one upcall per frame straight to
         * {@link TapListener#onFrame}.
         *
         * @param batched false for one upcall per frame
         * @return this builder
         */
        public @NonNull Builder batchFrames(boolean batched) {
            this.batchFrames = batched;
            return this;
        }

        /**
         * Sets our MAC address.
         *
         * @param mac six hex octets separated by {@code :} or {@code -}, e.g. {@code 02:00:5e:10:00:01};
         *     {@code null} picks a random locally administered address
         * @return this builder
         */
        public @NonNull Builder mac(@Nullable String mac) {
            this.mac = mac;
            return this;
        }

        /**
         * Gets the address by DHCP (the default).
         *
         * @return this builder
         */
        public @NonNull Builder dhcp() {
            this.staticAddress = null;
            this.staticGateway = null;
            this.staticPrefixLength = 0;
            return this;
        }

        /**
         * Uses a fixed IPv4 address instead of DHCP.
         *
         * @param address dotted-quad IPv4 address, e.g. {@code 192.0.2.50}
         * @param prefixLength subnet prefix length, 0–32
         * @param gateway default gateway, or {@code null} for none
         * @return this builder
         */
        public @NonNull Builder staticAddress(@NonNull String address, int prefixLength, @Nullable String gateway) {
            this.staticAddress = Objects.requireNonNull(address, "address");
            this.staticPrefixLength = prefixLength;
            this.staticGateway = gateway;
            return this;
        }

        /**
         * Sets the hostname sent to the DHCP server.
         *
         * @param hostname hostname for DHCP option 12, or {@code null}
         * @return this builder
         */
        public @NonNull Builder hostname(@Nullable String hostname) {
            this.hostname = hostname;
            return this;
        }

        /**
         * Sets the link MTU.
         *
         * @param mtu largest IP packet on the link, 576–65535
         * @return this builder
         */
        public @NonNull Builder mtu(int mtu) {
            this.mtu = mtu;
            return this;
        }

        /**
         * Turns IPv6 on (the default: link-local address, router discovery, SLAAC, reported by
         * {@link TapListener#onIpv6Changed}) or off (IPv6 is then dropped and counted).
         *
         * @param enabled whether IPv6 runs
         * @return this builder
         */
        public @NonNull Builder ipv6(boolean enabled) {
            this.ipv6 = enabled;
            return this;
        }

        /**
         * Uses a built-in link: {@code udp://host:port}, {@code tcp://host:port[?len=2|4]},
         * {@code vxlan://host:port?vni=N}, {@code tap://name} (Linux) or {@code fd://N} (a
         * datagram socket or TAP fd the emulator takes over when it starts; see
         * {@link #socketPair()} for the usual way). Every socket it opens is passed to
         * {@link TapListener#protect(int)} before it connects.
         *
         * @param url the link URL
         * @return this builder
         */
        public @NonNull Builder link(@NonNull String url) {
            this.linkUrl = Objects.requireNonNull(url, "url");
            this.socketPair = false;
            return this;
        }

        /**
         * Frames travel through a socket pair: for a VPN engine that reads and writes a TAP
         * device (OpenVPN {@code dev tap}, n2n, tinc in switch mode), with no JNI and no
         * upcall per frame. The emulator creates an {@code AF_UNIX} {@code SOCK_DGRAM} pair and
         * keeps one end; {@link TapEmulator#peerFd()} hands out the other, where each datagram
         * is one Ethernet frame, as each {@code read}/{@code write} is on a TAP fd. Give it to
         * the engine as its TAP fd. See {@code docs/socket-pair.md}.
         *
         * @return this builder
         */
        public @NonNull Builder socketPair() {
            this.linkUrl = null;
            this.socketPair = true;
            return this;
        }

        /**
         * Callback mode (the default): the app's own VPN protocol carries the frames. Frames for
         * the network arrive at {@link TapListener#onFrame}; frames from it go to
         * {@link TapEmulator#sendFrame(byte[], int, int)}.
         *
         * @return this builder
         */
        public @NonNull Builder callbackLink() {
            this.linkUrl = null;
            this.socketPair = false;
            return this;
        }

        /** @return the configuration */
        public @NonNull TapConfig build() {
            return new TapConfig(this);
        }
    }
}
