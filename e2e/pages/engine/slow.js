window.slowRanAt = performance.now();
