package io.tapemu.demo;

import android.content.Intent;
import android.net.VpnService;
import android.os.ParcelFileDescriptor;
import io.tapemu.Ipv6Info;
import io.tapemu.Route;
import io.tapemu.demo.core.InterfacePlan;
import io.tapemu.demo.core.VpnController;
import java.net.InetAddress;

/**
 * The Android glue, kept thin: a {@link VpnService} that gives {@link VpnController} its
 * {@link VpnController.Platform} (protect, Builder + establish + detachFd) and forwards state
 * to whoever watches. Everything else lives in {@code core/}, which compiles without the SDK.
 */
public final class TapVpnService extends VpnService {
    static final String ACTION_START = "io.tapemu.demo.START";
    static final String ACTION_STOP = "io.tapemu.demo.STOP";
    static final String EXTRA_URL = "url";

    /** Receives state changes (on the controller's worker thread). */
    interface Observer {
        void onState(VpnController.State state, InterfacePlan plan, String detail);
    }

    static volatile Observer observer;

    private VpnController controller;

    @Override
    public void onCreate() {
        super.onCreate();
        controller = new VpnController(new AndroidPlatform(), "tapemu demo");
    }

    @Override
    public int onStartCommand(Intent intent, int flags, int startId) {
        String action = intent == null ? ACTION_STOP : intent.getAction();
        if (ACTION_START.equals(action)) {
            String url = intent.getStringExtra(EXTRA_URL);
            controller.start(VpnController.configFor(url, "tapemu-demo"));
            return START_NOT_STICKY;
        }
        controller.stop();
        return START_NOT_STICKY;
    }

    @Override
    public void onRevoke() {
        controller.stop();
        super.onRevoke();
    }

    @Override
    public void onDestroy() {
        try {
            controller.shutdown(5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        super.onDestroy();
    }

    private final class AndroidPlatform implements VpnController.Platform {
        @Override
        public boolean protect(int fd) {
            return TapVpnService.this.protect(fd);
        }

        @Override
        public int establish(InterfacePlan plan) {
            Builder b = new Builder().setSession(plan.session).setMtu(plan.mtu)
                    .addAddress(plan.address, plan.prefixLength);
            for (Ipv6Info.Address a : plan.ipv6Addresses) {
                b.addAddress(a.address(), a.prefixLength());
            }
            for (Route r : plan.routes) {
                b.addRoute(r.destination(), r.prefixLength());
            }
            for (InetAddress dns : plan.dnsServers) {
                b.addDnsServer(dns);
            }
            for (String domain : plan.searchDomains) {
                b.addSearchDomain(domain);
            }
            ParcelFileDescriptor pfd = b.establish();
            return pfd == null ? -1 : pfd.detachFd();
        }

        @Override
        public void onStateChanged(VpnController.State state, InterfacePlan plan, String detail) {
            Observer o = observer;
            if (o != null) {
                o.onState(state, plan, detail);
            }
            if (state == VpnController.State.STOPPED || state == VpnController.State.FAILED) {
                stopSelf();
            }
        }
    }
}
