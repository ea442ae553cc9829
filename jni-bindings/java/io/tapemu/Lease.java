package io.tapemu;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * An IPv4 configuration from DHCP (or, with a static address, from the configuration): all
 * that {@code VpnService.Builder} needs to build the interface. Immutable.
 *
 * <pre>{@code
 * builder.addAddress(lease.address(), lease.prefixLength());
 * for (Route r : lease.routes()) builder.addRoute(r.destination(), r.prefixLength());
 * for (InetAddress d : lease.dns()) builder.addDnsServer(d);
 * for (String s : lease.searchDomains()) builder.addSearchDomain(s);
 * builder.setMtu(lease.mtu());
 * }</pre>
 */
public final class Lease {
    private InetAddress address;
    private int prefixLength;
    private InetAddress gateway;
    private final List<Route> routes = new ArrayList<>();
    private final List<InetAddress> dns = new ArrayList<>();
    private String domain;
    private final List<String> search = new ArrayList<>();
    private int mtu;
    private InetAddress broadcast;
    private long leaseTimeSeconds = -1;
    private long renewSeconds = -1;
    private long rebindSeconds = -1;
    private InetAddress server;

    private Lease() {}

    /** @return our address */
    public @NonNull InetAddress address() {
        return address;
    }

    /** @return the subnet prefix length */
    public int prefixLength() {
        return prefixLength;
    }

    /** @return the default gateway (DHCP router option), or {@code null} */
    public @Nullable InetAddress gateway() {
        return gateway;
    }

    /**
     * @return every route to install: the on-link subnet first, then the classless static routes
     *     (option 121) when the server sent them, else the default route via the gateway
     */
    public @NonNull List<Route> routes() {
        return Collections.unmodifiableList(routes);
    }

    /** @return DNS servers, in the server's order */
    public @NonNull List<InetAddress> dns() {
        return Collections.unmodifiableList(dns);
    }

    /** @return the domain name (option 15), or {@code null} */
    public @Nullable String domain() {
        return domain;
    }

    /** @return the DNS search list (option 119, else the domain name), possibly empty */
    public @NonNull List<String> searchDomains() {
        return Collections.unmodifiableList(search);
    }

    /**
     * @return the interface MTU: the server's option 26 if sent, capped at the configured link
     *     MTU, else the link MTU
     */
    public int mtu() {
        return mtu;
    }

    /** @return the broadcast address, or {@code null} */
    public @Nullable InetAddress broadcast() {
        return broadcast;
    }

    /** @return the lease time in seconds, or -1 for a static address or an infinite lease */
    public long leaseTimeSeconds() {
        return leaseTimeSeconds;
    }

    /** @return T1, seconds until renewal, or -1 */
    public long renewSeconds() {
        return renewSeconds;
    }

    /** @return T2, seconds until rebinding, or -1 */
    public long rebindSeconds() {
        return rebindSeconds;
    }

    /** @return the DHCP server's identifier, or {@code null} for a static address */
    public @Nullable InetAddress server() {
        return server;
    }

    @Override
    public @NonNull String toString() {
        StringBuilder sb = new StringBuilder();
        sb.append(address == null ? "?" : address.getHostAddress()).append('/').append(prefixLength);
        if (gateway != null) {
            sb.append(" gw ").append(gateway.getHostAddress());
        }
        sb.append(" routes ").append(routes).append(" dns [");
        for (int i = 0; i < dns.size(); i++) {
            sb.append(i == 0 ? "" : ", ").append(dns.get(i).getHostAddress());
        }
        sb.append("] mtu ").append(mtu);
        if (domain != null) {
            sb.append(" domain ").append(domain);
        }
        if (!search.isEmpty()) {
            sb.append(" search ").append(search);
        }
        if (leaseTimeSeconds >= 0) {
            sb.append(" lease ").append(leaseTimeSeconds).append('s');
        }
        return sb.toString();
    }

    /**
     * Parses a lease from the JSON the native side sends, the object {@code tapemu lease --json}
     * prints: a {@code lease}, {@code renewed} or {@code changed} event, or the {@code ipv4}
     * event of a static address (which has no DHCP fields).
     *
     * @param json the JSON text
     * @return the lease
     * @throws IllegalArgumentException on malformed JSON, a missing field or a bad address
     */
    static Lease parse(String json) {
        return from(Json.parseObject(json));
    }

    /** Reads the lease fields of a JSON object; see {@link #parse(String)}. */
    static Lease from(Json.Obj o) {
        Lease l = new Lease();
        l.address = ip(o.string("address"));
        l.prefixLength = (int) o.integer("prefix");
        l.gateway = optIp(o.optString("gateway"));
        for (Json.Obj r : o.objects("routes")) {
            l.routes.add(route(r));
        }
        for (String d : o.strings("dns")) {
            l.dns.add(ip(d));
        }
        l.domain = o.optString("domain");
        l.search.addAll(o.strings("search"));
        l.mtu = (int) o.integer("mtu");
        l.broadcast = optIp(o.optString("broadcast"));
        l.leaseTimeSeconds = o.optInteger("lease_seconds", -1);
        l.renewSeconds = o.optInteger("t1_seconds", -1);
        l.rebindSeconds = o.optInteger("t2_seconds", -1);
        l.server = optIp(o.optString("server"));
        return l;
    }

    /** A route object: {@code {"destination":"192.0.2.0/24","gateway":null}}. */
    static Route route(Json.Obj r) {
        String[] prefix = prefix(r.string("destination"));
        return new Route(ip(prefix[0]), Integer.parseInt(prefix[1]), optIp(r.optString("gateway")));
    }

    /** Splits {@code "address/length"}, checking the length is a number. */
    static String[] prefix(String v) {
        int slash = v.indexOf('/');
        if (slash < 0 || slash == v.length() - 1) {
            throw new IllegalArgumentException("bad prefix: " + v);
        }
        String len = v.substring(slash + 1);
        for (int i = 0; i < len.length(); i++) {
            if (len.charAt(i) < '0' || len.charAt(i) > '9' || i >= 3) {
                throw new IllegalArgumentException("bad prefix length: " + v);
            }
        }
        return new String[] {v.substring(0, slash), len};
    }

    static InetAddress optIp(String s) {
        return s == null ? null : ip(s);
    }

    /** Parses an IP literal without any name lookup. */
    static InetAddress ip(String s) {
        try {
            if (s.indexOf(':') >= 0) {
                return InetAddress.getByName(s); // a literal: no lookup
            }
            String[] p = s.split("\\.", -1);
            if (p.length != 4) {
                throw new IllegalArgumentException("bad IPv4 address: " + s);
            }
            byte[] b = new byte[4];
            for (int i = 0; i < 4; i++) {
                int n = p[i].isEmpty() || p[i].length() > 3 ? -1 : 0;
                for (int j = 0; j < p[i].length() && n >= 0; j++) {
                    char c = p[i].charAt(j);
                    n = c >= '0' && c <= '9' ? n * 10 + (c - '0') : -1;
                }
                if (n < 0 || n > 255) {
                    throw new IllegalArgumentException("bad IPv4 address: " + s);
                }
                b[i] = (byte) n;
            }
            return InetAddress.getByAddress(b);
        } catch (UnknownHostException e) {
            throw new IllegalArgumentException("bad address: " + s, e);
        }
    }
}
