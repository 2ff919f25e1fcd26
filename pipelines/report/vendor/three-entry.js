export {
  WebGLRenderer, Scene, PerspectiveCamera, BufferGeometry, BufferAttribute, Float32BufferAttribute,
  Mesh, MeshStandardMaterial, MeshBasicMaterial, Points, PointsMaterial, LineSegments, LineBasicMaterial,
  AmbientLight, DirectionalLight, HemisphereLight, Color, Vector3, Box3, Sphere, DoubleSide, Group
} from 'three';
export { OrbitControls } from 'three/examples/jsm/controls/OrbitControls.js';
