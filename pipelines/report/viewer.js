// The report's 3D view: mesh, camera frustums and sparse points with orbit/pan/zoom.
// Reads the JSON in <script id="scene-data">; arrays are base64 of little-endian typed arrays.
(function () {
  "use strict";
  function decode(b64, Type) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Type(bytes.buffer);
  }

  function addMesh(group, mesh) {
    const geometry = new THREE.BufferGeometry();
    geometry.setAttribute("position", new THREE.BufferAttribute(decode(mesh.positions, Float32Array), 3));
    geometry.setAttribute("color", new THREE.BufferAttribute(decode(mesh.colors, Uint8Array), 3, true));
    geometry.setIndex(new THREE.BufferAttribute(decode(mesh.indices, Uint32Array), 1));
    geometry.computeVertexNormals();
    const material = new THREE.MeshStandardMaterial({
      vertexColors: true, side: THREE.DoubleSide, roughness: 0.9, metalness: 0.0,
    });
    const object = new THREE.Mesh(geometry, material);
    group.add(object);
    return object;
  }

  function addPoints(group, points, size) {
    const geometry = new THREE.BufferGeometry();
    geometry.setAttribute("position", new THREE.BufferAttribute(decode(points.positions, Float32Array), 3));
    geometry.setAttribute("color", new THREE.BufferAttribute(decode(points.colors, Uint8Array), 3, true));
    const material = new THREE.PointsMaterial({ size: size, vertexColors: true, sizeAttenuation: true });
    const object = new THREE.Points(geometry, material);
    group.add(object);
    return object;
  }

  function addFrustums(group, b64) {
    const geometry = new THREE.BufferGeometry();
    geometry.setAttribute("position", new THREE.BufferAttribute(decode(b64, Float32Array), 3));
    const object = new THREE.LineSegments(geometry, new THREE.LineBasicMaterial({ color: 0xd8453b }));
    group.add(object);
    return object;
  }

  function toggle(id, object) {
    const box = document.getElementById(id);
    if (!box) return;
    if (!object) { box.disabled = true; box.checked = false; return; }
    box.addEventListener("change", function () { object.visible = box.checked; });
  }

  function start() {
    const holder = document.getElementById("view3d");
    const source = document.getElementById("scene-data");
    if (!holder || !source) return;
    const data = JSON.parse(source.textContent);
    const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
    renderer.setPixelRatio(window.devicePixelRatio || 1);
    renderer.setSize(holder.clientWidth, holder.clientHeight);
    renderer.setClearColor(0x20232a, 1);
    holder.appendChild(renderer.domElement);

    const scene = new THREE.Scene();
    scene.add(new THREE.HemisphereLight(0xffffff, 0x444444, 1.6));
    const sun = new THREE.DirectionalLight(0xffffff, 1.2);
    scene.add(sun);
    const group = new THREE.Group();
    scene.add(group);
    const mesh = data.mesh ? addMesh(group, data.mesh) : null;
    const points = data.points ? addPoints(group, data.points, data.radius * 0.006) : null;
    const frustums = data.frustums ? addFrustums(group, data.frustums) : null;
    toggle("show-mesh", mesh);
    toggle("show-points", points);
    toggle("show-cameras", frustums);

    const r = data.radius;
    const camera = new THREE.PerspectiveCamera(50, holder.clientWidth / holder.clientHeight, r * 0.01, r * 100);
    const up = new THREE.Vector3().fromArray(data.up);
    const target = new THREE.Vector3().fromArray(data.target);
    camera.up.copy(up);
    // Start above and to one side of the scene, looking at its centre.
    const side = new THREE.Vector3(1, 0, 0);
    if (Math.abs(side.dot(up)) > 0.9) side.set(0, 0, 1);
    side.addScaledVector(up, -side.dot(up)).normalize();
    camera.position.copy(target).addScaledVector(up, 0.8 * r).addScaledVector(side, 1.3 * r);
    camera.lookAt(target);
    const controls = new THREE.OrbitControls(camera, renderer.domElement);
    controls.target.copy(target);
    controls.update();

    function render() {
      sun.position.copy(camera.position);
      renderer.render(scene, camera);
    }
    controls.addEventListener("change", render);
    window.addEventListener("resize", function () {
      camera.aspect = holder.clientWidth / holder.clientHeight;
      camera.updateProjectionMatrix();
      renderer.setSize(holder.clientWidth, holder.clientHeight);
      render();
    });
    document.querySelectorAll(".toggles input").forEach(function (box) {
      box.addEventListener("change", render);
    });
    render();
    holder.dataset.rendered = "1";
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
