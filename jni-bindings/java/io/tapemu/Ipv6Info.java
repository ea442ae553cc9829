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
        public InetAddress address() {
            return address;
        }

        /** @return its prefix length */
        public int prefixLength() {
            return prefixLength;
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Address && ((Address) o).address.equals(address)
                    && ((Address) o).prefixLength == prefixLength;
        }

        @Override
        public int hashCode() {
            return address.hashCode() * 31 + prefixLength;
        }

        @Override
        public String toString() {
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
    public List<Address> addresses() {
        return Collections.unmodifiableList(addresses);
    }

    /** @return our link-local address, or {@code null} before it passed DAD */
    public InetAddress linkLocal() {
        return linkLocal;
    }

    /** @return on-link prefixes and, while a router is valid, {@code ::/0} via it */
    public List<Route> routes() {
        return Collections.unmodifiableList(routes);
    }

    /** @return recursive DNS servers */
    public List<InetAddress> dns() {
        return Collections.unmodifiableList(dns);
    }

    /** @return DNS search domains */
    public List<String> searchDomains() {
        return Collections.unmodifiableList(search);
    }

    /** @return the MTU the router advertised, or -1 */
    public int mtu() {
        return mtu;
    }

    @Override
    public boolean equals(Object o) {
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
    public String toString() {
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
     * Parses the native side's text form: one {@code key=value} per line.
     *
     * @param text the encoded state
     * @return the state
     * @throws IllegalArgumentException on a malformed line
     */
    static Ipv6Info parse(String text) {
        Ipv6Info info = new Ipv6Info();
        for (String line : text.split("\n")) {
            int eq = line.indexOf('=');
            if (eq < 0) {
                continue;
            }
            String k = line.substring(0, eq);
            String v = line.substring(eq + 1);
            switch (k) {
                case "address": {
                    int slash = v.indexOf('/');
                    if (slash < 0) {
                        throw new IllegalArgumentException("bad address: " + v);
                    }
                    info.addresses.add(new Address(Lease.ip(v.substring(0, slash)),
                            Integer.parseInt(v.substring(slash + 1))));
                    break;
                }
                case "link_local": info.linkLocal = Lease.ip(v); break;
                case "route": info.routes.add(Lease.route(v)); break;
                case "dns": info.dns.add(Lease.ip(v)); break;
                case "search": info.search.add(v); break;
                case "mtu": info.mtu = Integer.parseInt(v); break;
                default: break;
            }
        }
        return info;
    }
}
