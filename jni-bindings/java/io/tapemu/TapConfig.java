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

    private TapConfig(Builder b) {
        this.mac = b.mac;
        this.staticAddress = b.staticAddress;
        this.staticPrefixLength = b.staticPrefixLength;
        this.staticGateway = b.staticGateway;
        this.hostname = b.hostname;
        this.mtu = b.mtu;
        this.ipv6 = b.ipv6;
        this.linkUrl = b.linkUrl;
    }

    /** @return a builder with DHCP, a random MAC, MTU 1500 and callback mode. */
    public static Builder builder() {
        return new Builder();
    }

    /** @return the MAC as given, or {@code null} for a random locally administered one. */
    public String mac() {
        return mac;
    }

    /** @return true when the address comes from DHCP. */
    public boolean isDhcp() {
        return staticAddress == null;
    }

    /** @return the static address, or {@code null} with DHCP. */
    public String staticAddress() {
        return staticAddress;
    }

    /** @return the static prefix length (meaningful only with a static address). */
    public int staticPrefixLength() {
        return staticPrefixLength;
    }

    /** @return the static default gateway, or {@code null}. */
    public String staticGateway() {
        return staticGateway;
    }

    /** @return the hostname sent to the DHCP server, or {@code null}. */
    public String hostname() {
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
    public String linkUrl() {
        return linkUrl;
    }

    /** @return true when frames travel through {@link TapListener#onFrame} and {@link TapEmulator#sendFrame}. */
    public boolean isCallbackMode() {
        return linkUrl == null;
    }

    @Override
    public String toString() {
        return "TapConfig{mac=" + mac + ", " + (isDhcp() ? "dhcp" : staticAddress + "/" + staticPrefixLength
                + " gw " + staticGateway) + ", hostname=" + hostname + ", mtu=" + mtu + ", ipv6=" + ipv6
                + ", link=" + (linkUrl == null ? "callback" : linkUrl) + "}";
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

        private Builder() {}

        /**
         * Sets our MAC address.
         *
         * @param mac six hex octets separated by {@code :} or {@code -}, e.g. {@code 02:00:5e:10:00:01};
         *     {@code null} picks a random locally administered address
         * @return this builder
         */
        public Builder mac(String mac) {
            this.mac = mac;
            return this;
        }

        /**
         * Gets the address by DHCP (the default).
         *
         * @return this builder
         */
        public Builder dhcp() {
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
        public Builder staticAddress(String address, int prefixLength, String gateway) {
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
        public Builder hostname(String hostname) {
            this.hostname = hostname;
            return this;
        }

        /**
         * Sets the link MTU.
         *
         * @param mtu largest IP packet on the link, 576–65535
         * @return this builder
         */
        public Builder mtu(int mtu) {
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
        public Builder ipv6(boolean enabled) {
            this.ipv6 = enabled;
            return this;
        }

        /**
         * Uses a built-in link: {@code udp://host:port}, {@code tcp://host:port[?len=2|4]},
         * {@code vxlan://host:port?vni=N} or {@code tap://name} (Linux). Every socket it opens is
         * passed to {@link TapListener#protect(int)} before it connects.
         *
         * @param url the link URL
         * @return this builder
         */
        public Builder link(String url) {
            this.linkUrl = Objects.requireNonNull(url, "url");
            return this;
        }

        /**
         * Callback mode (the default): the app's own VPN protocol carries the frames. Frames for
         * the network arrive at {@link TapListener#onFrame}; frames from it go to
         * {@link TapEmulator#sendFrame(byte[], int, int)}.
         *
         * @return this builder
         */
        public Builder callbackLink() {
            this.linkUrl = null;
            return this;
        }

        /** @return the configuration */
        public TapConfig build() {
            return new TapConfig(this);
        }
    }
}
