package io.tapemu;

import java.net.InetAddress;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The usable IPv6 configuration from router advertisements (SLAAC, RDNSS/DNSSL, RA MTU) and
 * stateless DHCPv6: the complete set each time it changes. Immutable.
 */
public final class Ipv6Info {
    /** An address with its prefix length. */
    public static final class Address {
        private final InetAddress address;
        private final int prefixLength;

        Address(InetAddress address, int prefixLength) {
            this.address = address;
            this.prefixLength = prefixLength;
        }

        /** @return the address */
        public @NonNull InetAddress address() {
            return address;
        }

        /** @return its prefix length */
        public int prefixLength() {
            return prefixLength;
        }

        @Override
        public boolean equals(@Nullable Object o) {
            return o instanceof Address && ((Address) o).address.equals(address)
                    && ((Address) o).prefixLength == prefixLength;
        }

        @Override
        public int hashCode() {
            return address.hashCode() * 31 + prefixLength;
        }

        @Override
        public @NonNull String toString() {
            return address.getHostAddress() + "/" + prefixLength;
        }
    }

    private final List<Address> addresses = new ArrayList<>();
    private InetAddress linkLocal;
    private final List<Route> routes = new ArrayList<>();
    private final List<InetAddress> dns = new ArrayList<>();
    private final List<String> search = new ArrayList<>();
    private int mtu = -1;

    private Ipv6Info() {}

    /** @return global addresses that passed DAD, for {@code VpnService.Builder.addAddress} */
    public @NonNull List<Address> addresses() {
        return Collections.unmodifiableList(addresses);
    }

    /** @return our link-local address, or {@code null} before it passed DAD */
    public @Nullable InetAddress linkLocal() {
        return linkLocal;
    }

    /** @return on-link prefixes and, while a router is valid, {@code ::/0} via it */
    public @NonNull List<Route> routes() {
        return Collections.unmodifiableList(routes);
    }

    /** @return recursive DNS servers */
    public @NonNull List<InetAddress> dns() {
        return Collections.unmodifiableList(dns);
    }

    /** @return DNS search domains */
    public @NonNull List<String> searchDomains() {
        return Collections.unmodifiableList(search);
    }

    /** @return the MTU the router advertised, or -1 */
    public int mtu() {
        return mtu;
    }

    @Override
    public boolean equals(@Nullable Object o) {
        if (!(o instanceof Ipv6Info)) {
            return false;
        }
        Ipv6Info i = (Ipv6Info) o;
        return addresses.equals(i.addresses) && java.util.Objects.equals(linkLocal, i.linkLocal)
                && routes.equals(i.routes) && dns.equals(i.dns) && search.equals(i.search) && mtu == i.mtu;
    }

    @Override
    public int hashCode() {
        return java.util.Objects.hash(addresses, linkLocal, routes, dns, search, mtu);
    }

    @Override
    public @NonNull String toString() {
        return "addresses " + addresses + " link-local " + (linkLocal == null ? "-" : linkLocal.getHostAddress())
                + " routes " + routes + " dns " + hosts(dns) + " search " + search + " mtu " + mtu;
    }

    private static List<String> hosts(List<InetAddress> list) {
        List<String> out = new ArrayList<>();
        for (InetAddress a : list) {
            out.add(a.getHostAddress());
        }
        return out;
    }

    /**
     * Parses the IPv6 state from the JSON the native side sends, the {@code ipv6} event object
     * {@code tapemu run --json} prints.
     *
     * @param json the JSON text
     * @return the state
     * @throws IllegalArgumentException on malformed JSON, a missing field or a bad address
     */
    static Ipv6Info parse(String json) {
        return from(Json.parseObject(json));
    }

    /** Reads the IPv6 fields of a JSON object; see {@link #parse(String)}. */
    static Ipv6Info from(Json.Obj o) {
        Ipv6Info info = new Ipv6Info();
        for (String a : o.strings("addresses")) {
            String[] prefix = Lease.prefix(a);
            info.addresses.add(new Address(Lease.ip(prefix[0]), Integer.parseInt(prefix[1])));
        }
        info.linkLocal = Lease.optIp(o.optString("link_local"));
        for (Json.Obj r : o.objects("routes")) {
            info.routes.add(Lease.route(r));
        }
        for (String d : o.strings("dns")) {
            info.dns.add(Lease.ip(d));
        }
        info.search.addAll(o.strings("search"));
        info.mtu = (int) o.optInteger("mtu", -1);
        return info;
    }
}
