"""Weight-sharing supernets (once-for-all, BigNAS): train one network over a search space, then
evaluate its subnetworks without training each. Layer: above :mod:`nas.train`, below :mod:`nas.search`."""
