package io.tapemu;

import static io.tapemu.TestRunner.check;
import static io.tapemu.TestRunner.expect;
import static io.tapemu.TestRunner.test;

import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Arrays;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * The socket-pair link ({@link TapConfig.Builder#socketPair()}): Java stands in for a VPN
 * engine that reads and writes a TAP fd, on {@link TapEmulator#peerFd()}. Needs
 * {@code --add-opens java.base/java.io=ALL-UNNAMED} (reading a raw fd from Java).
 */
final class SocketPairTests {
    private SocketPairTests() {}

    /** An engine on the peer fd: one datagram per read is one frame. */
    static final class Engine implements AutoCloseable {
        final BlockingQueue<byte[]> frames = new LinkedBlockingQueue<>();
        private final FileInputStream in;
        private final FileOutputStream out;
        private final Thread reader;
        private volatile boolean stopping;

        Engine(int fd) throws IOException {
            FileDescriptor d = Fds.attach(fd);
            in = new FileInputStream(d);
            out = new FileOutputStream(d);
            reader = new Thread(() -> {
                byte[] buf = new byte[65536];
                try {
                    while (!stopping) {
                        int n = in.read(buf);
                        if (n < 0) {
                            return;
                        }
                        frames.add(Arrays.copyOf(buf, n));
                    }
                } catch (IOException e) {
                    // closed
                }
            }, "engine");
            reader.setDaemon(true);
            reader.start();
        }

        void send(byte[] frame) throws IOException {
            out.write(frame); // one write(2): one datagram
        }

        /** Next frame with the given EtherType, skipping others; null on timeout. */
        byte[] next(int etherType, long timeoutMs) throws InterruptedException {
            long end = System.currentTimeMillis() + timeoutMs;
            while (true) {
                byte[] f = frames.poll(Math.max(end - System.currentTimeMillis(), 0), TimeUnit.MILLISECONDS);
                if (f == null || Frames.etherType(f) == etherType) {
                    return f;
                }
            }
        }

        /**
         * Ends the reader: it stops after the next frame, which {@code wake} makes the emulator
         * send (a read on the pair cannot be interrupted from Java), then closes the fd.
         */
        void stop(byte[] wake) throws IOException, InterruptedException {
            stopping = true;
            send(wake);
            reader.join(5000);
            check(!reader.isAlive(), "the engine's reader ended");
            in.close();
        }

        @Override
        public void close() throws IOException {
            stopping = true;
            in.close();
        }
    }

    /** Serves DHCP on the engine until the listener has a lease. */
    static Lease serveDhcp(Engine engine, TestRunner.Recorder r, String address) throws Exception {
        long end = System.currentTimeMillis() + 10_000;
        while (System.currentTimeMillis() < end) {
            Lease l = r.leases.poll(1, TimeUnit.MILLISECONDS);
            if (l != null) {
                return l;
            }
            byte[] f = engine.frames.poll(50, TimeUnit.MILLISECONDS);
            Frames.Dhcp d = f == null ? null : Frames.parseDhcpFromClient(f);
            if (d != null && (d.type == 1 || d.type == 3)) {
                engine.send(Frames.dhcpReply(d, d.type == 1 ? 2 : 5, TestRunner.SERVER_MAC, address));
            }
        }
        return null;
    }

    static void unitTests() {
        test("socketPair(): peerFd() is a socket, handed out once; never taken, it closes with the emulator", () -> {
            TestRunner.Recorder r = new TestRunner.Recorder();
            int sockets = Fds.countSockets();
            try (TapEmulator tap = new TapEmulator(TapConfig.builder().socketPair().build(), r)) {
                check(tap.config().isSocketPair() && !tap.config().isCallbackMode(), "config");
                check(Fds.countSockets() == sockets + 2, "the pair exists from construction");
                int fd = tap.peerFd();
                check(Files.readSymbolicLink(Paths.get("/proc/self/fd/" + fd)).toString().startsWith("socket:"), "a socket");
                expect(IllegalStateException.class, tap::peerFd);
                expect(IllegalStateException.class, () -> tap.sendFrame(new byte[60], 0, 60));
                new FileInputStream(Fds.attach(fd)).close(); // ours: closed by us
            }
            check(Fds.countSockets() == sockets, "our end closed with the emulator");
            try (TapEmulator never = new TapEmulator(TapConfig.builder().socketPair().build(), r)) {
                never.start();
            }
            check(Fds.countSockets() == sockets, "both ends closed when the peer was never taken");
            try (TapEmulator cb = new TapEmulator(TapConfig.builder().build(), r)) {
                expect(IllegalStateException.class, cb::peerFd);
            }
            TapEmulator.validate(TapConfig.builder().link("fd://3").build());
            check(!TapConfig.builder().link("fd://3").build().needsProtect(), "fd:// opens no socket");
            expect(IllegalArgumentException.class, () -> TapEmulator.validate(TapConfig.builder().link("fd://x").build()));
        });

        test("AndroidFds: peer() as a ParcelFileDescriptor; attachTun(pfd) detaches it and the fd is "
                + "taken whatever happens", () -> {
            TestRunner.Recorder r = new TestRunner.Recorder();
            try (TapEmulator tap = new TapEmulator(TapConfig.builder().socketPair().build(), r)) {
                android.os.ParcelFileDescriptor peer = AndroidFds.peer(tap);
                check(Files.readSymbolicLink(Paths.get("/proc/self/fd/" + peer.getFd())).toString().startsWith("socket:"),
                        "the peer end");
                new FileInputStream(Fds.attach(peer.detachFd())).close();
                expect(IllegalStateException.class, () -> AndroidFds.peer(tap));
            }
            java.nio.file.Path fifo = Files.createTempDirectory("tapemu-pfd").resolve("tun");
            TapEmulator closed = new TapEmulator(TapConfig.builder().build(), r);
            closed.close();
            android.os.ParcelFileDescriptor pfd = android.os.ParcelFileDescriptor.adoptFd(Fds.openFifo(fifo));
            expect(IllegalStateException.class, () -> AndroidFds.attachTun(closed, pfd));
            check(Fds.countOpen(fifo.toString()) == 0, "the fd was taken and closed");
            expect(IllegalStateException.class, pfd::getFd);
            expect(IllegalStateException.class, () -> AndroidFds.attachTun(closed, pfd));
            Files.delete(fifo);
            Files.delete(fifo.getParent());
        });

        test("socketPair(): an engine on peerFd() gets a DHCP lease and an ARP answer, one frame per datagram", () -> {
            TestRunner.Recorder r = new TestRunner.Recorder();
            try (TapEmulator tap = new TapEmulator(TapConfig.builder().socketPair().ipv6(false).build(), r);
                    Engine engine = new Engine(tap.peerFd())) {
                tap.start();
                Lease lease = serveDhcp(engine, r, "192.0.2.79");
                check(lease != null && lease.address().getHostAddress().equals("192.0.2.79"), "lease " + lease);
                byte[] peerMac = Frames.mac("02:00:5e:10:00:99");
                byte[] ask = Frames.arpRequest(peerMac, Frames.ip("192.0.2.1"), Frames.ip("192.0.2.79"));
                engine.frames.clear();
                engine.send(ask);
                byte[] reply = engine.next(0x0806, 5000);
                check(reply != null && reply[21] == 2 && Arrays.equals(Arrays.copyOf(reply, 6), peerMac), "ARP reply");
                TapStats s = tap.stats();
                check(s.get("link.frames_in") >= 3 && s.get("link.frames_out") >= 3, "frames both ways: " + s);
                engine.stop(ask);
            }
        });
    }

    /**
     * The lab: an engine on peerFd() relays frames to the lab's kernel VXLAN endpoint (a VPN
     * engine's own tunnel, played in Java); dnsmasq leases, and a TUN carries a ping to the LAN.
     */
    static void labTests(String linkUrl, String lanHost) {
        test("lab: socket pair, an engine relaying to VXLAN, dnsmasq lease, ping " + lanHost + " through the TUN", () -> {
            InetSocketAddress vtep = new InetSocketAddress(InetAddress.getByName(
                    linkUrl.replaceAll("^vxlan://([^:]+):.*$", "$1")), 4789);
            int vni = Integer.parseInt(linkUrl.replaceAll("^.*vni=(\\d+).*$", "$1"));
            TestRunner.Recorder r = new TestRunner.Recorder();
            DatagramSocket udp = new DatagramSocket(new InetSocketAddress(4789));
            try (TapEmulator tap = new TapEmulator(TapConfig.builder().socketPair().hostname("jvm-pair").build(), r);
                    Engine engine = new Engine(tap.peerFd())) {
                Thread toVxlan = new Thread(() -> {
                    try {
                        while (true) {
                            byte[] f = engine.frames.take();
                            byte[] dg = new byte[8 + f.length];
                            dg[0] = 0x08;
                            dg[4] = (byte) (vni >> 16);
                            dg[5] = (byte) (vni >> 8);
                            dg[6] = (byte) vni;
                            System.arraycopy(f, 0, dg, 8, f.length);
                            udp.send(new DatagramPacket(dg, dg.length, vtep));
                        }
                    } catch (InterruptedException | IOException e) {
                        // done
                    }
                }, "relay-out");
                Thread fromVxlan = new Thread(() -> {
                    byte[] buf = new byte[2000];
                    try {
                        while (true) {
                            DatagramPacket p = new DatagramPacket(buf, buf.length);
                            udp.receive(p);
                            if (p.getLength() > 8) {
                                engine.send(Arrays.copyOfRange(buf, 8, p.getLength()));
                            }
                        }
                    } catch (IOException e) {
                        // closed
                    }
                }, "relay-in");
                toVxlan.setDaemon(true);
                fromVxlan.setDaemon(true);
                toVxlan.start();
                fromVxlan.start();
                tap.start();
                Lease lease = r.leases.poll(30, TimeUnit.SECONDS);
                check(lease != null, "lease from dnsmasq through the engine");
                System.out.println("     lease: " + lease);
                int fd = TestRunner.labTun("tpjpair0", lease, false);
                tap.attachTun(fd);
                String out = TestRunner.sh("ping", "-c", "3", "-i", "0.2", "-W", "3", lanHost);
                System.out.println("     " + out.trim().replace("\n", "\n     "));
                TapStats s = tap.stats();
                check(s.get("tun.packets_in") >= 3 && s.get("tun.packets_out") >= 3, "pings both ways: " + s);
                toVxlan.interrupt();
                udp.close();
                fromVxlan.join(5000);
                engine.stop(Frames.arpRequest(Frames.mac("02:00:5e:10:00:99"), Frames.ip("192.0.2.1"),
                        lease.address().getAddress()));
            } finally {
                udp.close();
            }
        });
    }
}
