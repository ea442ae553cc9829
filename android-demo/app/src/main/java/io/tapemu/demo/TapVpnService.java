package io.tapemu.demo;

import android.content.Intent;
import android.content.SharedPreferences;
import android.net.ConnectivityManager;
import android.net.Network;
import android.net.NetworkCapabilities;
import android.net.NetworkRequest;
import android.net.VpnService;
import android.os.Build;
import android.os.Handler;
import android.os.Looper;
import android.os.ParcelFileDescriptor;
import android.util.Log;
import io.tapemu.Ipv6Info;
import io.tapemu.Route;
import io.tapemu.TapEmulator;
import io.tapemu.demo.core.InterfacePlan;
import io.tapemu.demo.core.VpnController;
import java.net.InetAddress;

/**
 * The Android glue, kept thin: a {@link VpnService} that gives {@link VpnController} its
 * {@link VpnController.Platform} (protect, Builder + establish + detachFd, underlying networks)
 * and forwards state to whoever watches. Everything else lives in {@code core/}, which
 * compiles without the SDK and is tested on the host.
 */
public final class TapVpnService extends VpnService {
    static final String ACTION_START = "io.tapemu.demo.START";
    static final String ACTION_STOP = VpnController.ACTION_STOP;
    static final String EXTRA_URL = "url";
    static final String DEFAULT_URL = "vxlan://198.51.100.1:4789?vni=42";
    private static final String TAG = "tapemu-demo";
    static final String PREFS = "vpn";
    /** Preferences: the MAC, the stored lease, and the URL they were obtained over. */
    private static final String PREF_MAC = "mac";
    private static final String PREF_LEASE = "lease";
    private static final String PREF_LEASE_URL = "lease_url";

    /** Receives state changes (on the controller's worker thread). */
    interface Observer {
        void onState(VpnController.State state, InterfacePlan plan, String detail);
    }

    static volatile Observer observer;

    private VpnController controller;
    private ConnectivityManager connectivity;
    private final ConnectivityManager.NetworkCallback networkCallback = new ConnectivityManager.NetworkCallback() {
        private Network current;

        @Override
        public void onAvailable(Network network) {
            current = network;
            controller.networkChanged(network);
        }

        @Override
        public void onLost(Network network) {
            if (network.equals(current)) {
                current = null;
                controller.networkChanged(null);
            }
        }
    };

    @Override
    public void onCreate() {
        super.onCreate();
        controller = new VpnController(new AndroidPlatform(), "tapemu demo");
        // The networks the link can use: any with Internet that is not a VPN (ours included).
        connectivity = getSystemService(ConnectivityManager.class);
        NetworkRequest request = new NetworkRequest.Builder()
                .addCapability(NetworkCapabilities.NET_CAPABILITY_INTERNET)
                .addCapability(NetworkCapabilities.NET_CAPABILITY_NOT_VPN)
                .build();
        if (Build.VERSION.SDK_INT >= 31) {
            connectivity.registerBestMatchingNetworkCallback(request, networkCallback,
                    new Handler(Looper.getMainLooper()));
        } else {
            connectivity.registerNetworkCallback(request, networkCallback);
        }
    }

    /**
     * Connect (the app's button, or the system: always-on VPN starts the service with
     * {@link VpnService#SERVICE_INTERFACE} or, after a restart, with no intent at all) or stop.
     * Sticky: the system restarts the service, which reconnects to the last server.
     */
    @Override
    public int onStartCommand(Intent intent, int flags, int startId) {
        String action = intent == null ? null : intent.getAction();
        SharedPreferences prefs = getSharedPreferences(PREFS, MODE_PRIVATE);
        String url = intent == null ? null : intent.getStringExtra(EXTRA_URL);
        if (url != null) {
            prefs.edit().putString(EXTRA_URL, url).apply();
        } else {
            url = prefs.getString(EXTRA_URL, DEFAULT_URL);
        }
        // The same MAC and, on the same server, the lease of the last run: a restarted service
        // gets its address back by INIT-REBOOT instead of a new one.
        String mac = prefs.getString(PREF_MAC, null);
        String lease = url.equals(prefs.getString(PREF_LEASE_URL, null)) ? prefs.getString(PREF_LEASE, null) : null;
        controller.onStartCommand(action, VpnController.configFor(url, "tapemu-demo", mac, lease));
        return START_STICKY;
    }

    @Override
    public void onRevoke() {
        controller.stop();
        super.onRevoke();
    }

    @Override
    public void onDestroy() {
        connectivity.unregisterNetworkCallback(networkCallback);
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
            if (Build.VERSION.SDK_INT >= 29) {
                b.setMetered(plan.metered);
            }
            ParcelFileDescriptor pfd = b.establish();
            return pfd == null ? -1 : pfd.detachFd();
        }

        @Override
        public void setUnderlyingNetwork(Object network) {
            setUnderlyingNetworks(network == null ? null : new Network[] {(Network) network});
        }

        @Override
        public void networkChanged(TapEmulator emulator) {
            emulator.networkChanged();
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

        @Override
        public void storeIdentity(String mac, String storedLease) {
            SharedPreferences prefs = getSharedPreferences(PREFS, MODE_PRIVATE);
            prefs.edit().putString(PREF_MAC, mac).putString(PREF_LEASE, storedLease)
                    .putString(PREF_LEASE_URL, prefs.getString(EXTRA_URL, DEFAULT_URL)).apply();
        }

        @Override
        public void onTaskFailed(String task, Throwable error) {
            Log.e(TAG, "VPN controller task failed: " + task, error);
        }
    }
}
